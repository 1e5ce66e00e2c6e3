package build

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Paths of the provisioning files, relative to the provisioning directory
// (Grafana's provisioning/ folder, /etc/grafana/provisioning in packages
// and the official image).
const (
	DatasourcesFile = "datasources/rampart.yaml"
	ProviderFile    = "dashboards/rampart.yaml"
	DashboardsDir   = "dashboards/rampart"
	AlertingFile    = "alerting/rampart.yaml"
)

// datasources: ClickHouse over the native protocol as a read-only user, and
// Prometheus for Rampart's own metrics. Grafana expands $VARIABLES in
// provisioning files, so one file serves every installation.
const datasources = `# Rampart's datasources. Grafana expands the environment variables below
# when it reads this file: set them where Grafana runs.
apiVersion: 1

datasources:
  - name: Rampart ClickHouse
    uid: ` + ClickHouseUID + `
    type: ` + ClickHouseType + `
    editable: false
    jsonData:
      host: ${RAMPART_CLICKHOUSE_HOST}
      port: ${RAMPART_CLICKHOUSE_PORT}
      protocol: native
      secure: false
      username: ${RAMPART_CLICKHOUSE_USER}
      defaultDatabase: ${RAMPART_CLICKHOUSE_DATABASE}
    secureJsonData:
      password: ${RAMPART_CLICKHOUSE_PASSWORD}

  - name: Rampart Prometheus
    uid: ` + PrometheusUID + `
    type: ` + PrometheusType + `
    access: proxy
    editable: false
    url: ${RAMPART_PROMETHEUS_URL}
`

const provider = `# Loads Rampart's dashboards from the folder beside this file. Grafana's
# official image and packages read provisioning from /etc/grafana/provisioning.
apiVersion: 1

providers:
  - name: rampart
    folder: Rampart
    folderUid: rampart
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: /etc/grafana/provisioning/dashboards/rampart
`

// Files returns every provisioning file by its path.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{
		DatasourcesFile: []byte(datasources),
		ProviderFile:    []byte(provider),
	}
	for _, b := range Boards() {
		j, err := b.JSON()
		if err != nil {
			return nil, err
		}
		out[filepath.Join(DashboardsDir, b.File)] = j
	}
	r, err := rulesFile()
	if err != nil {
		return nil, err
	}
	out[AlertingFile] = r
	return out, nil
}

// Write writes Files under dir, replacing what is there.
func Write(dir string) error {
	files, err := Files()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	return nil
}
