// Package deploy holds no code: its tests render and check the deployment
// files beside it (kubernetes/, the Helm chart) and start the components
// those files run to probe the paths they name. A module of its own, so
// the Kubernetes and Helm libraries the checks need stay out of the
// components' builds.
package deploy
