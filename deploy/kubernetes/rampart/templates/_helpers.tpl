{{/* The release's name for a component: <release>-<component>. */}}
{{- define "rampart.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rampart.selector" -}}
app.kubernetes.io/name: rampart
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rampart.labels" -}}
{{ include "rampart.selector" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "rampart.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Every pod: no service account token, non-root, the runtime's seccomp profile. */}}
{{- define "rampart.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* Every container: nothing writable but its volumes, no capabilities. */}}
{{- define "rampart.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities: {drop: [ALL]}
{{- end -}}

{{/* The probes, on the admin listener (package health): the container
names its port "admin". */}}
{{- define "rampart.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: admin}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: admin}
  periodSeconds: 5
  failureThreshold: 2
startupProbe:
  httpGet: {path: /healthz, port: admin}
  periodSeconds: 2
  failureThreshold: 30
{{- end -}}

{{- define "rampart.natsURL" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "rampart.name" (dict "root" . "component" "nats") }}:4222
{{- else -}}
{{- required "nats.url is required with nats.enabled: false" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Egress every component needs: DNS, and JetStream. */}}
{{- define "rampart.egressBase" -}}
- to: {{ toYaml .Values.dnsEgress | nindent 4 }}
  ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
{{- if .Values.nats.enabled }}
- to:
    - podSelector:
        matchLabels: {{ include "rampart.selector" (dict "root" . "component" "nats") | nindent 10 }}
  ports: [{port: 4222, protocol: TCP}]
{{- else }}
- to: {{ toYaml .Values.nats.egress.to | nindent 4 }}
  ports: {{ toYaml .Values.nats.egress.ports | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "rampart.ingressMetrics" -}}
{{- if .Values.metricsFrom }}
- from: {{ toYaml .Values.metricsFrom | nindent 4 }}
  ports: [{port: {{ .Values.adminPort }}, protocol: TCP}]
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: one pod of the component may go at a time. */}}
{{- define "rampart.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "rampart.name" . }}
  labels: {{ include "rampart.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {{ include "rampart.selector" . | nindent 6 }}
{{- end -}}

{{- define "rampart.checkpointVolume" -}}
{{- if .secret }}
- name: checkpoint-key
  secret: {secretName: {{ .secret }}, defaultMode: 0400, items: [{key: key.pem, path: key.pem}]}
{{- end }}
{{- end -}}

{{- define "rampart.clickhouseConfig" -}}
clickhouse:
  addr: {{ .Values.clickhouse.addr }}
  database: {{ .Values.clickhouse.database }}
  username: {{ .Values.clickhouse.username }}
  password: {{ .Values.clickhouse.password | quote }}
{{- end -}}

{{/* The collector's file; the migrations Job reads its clickhouse section. */}}
{{- define "rampart.collectorConfig" -}}
consumer: collector
memory_limit_mib: {{ .Values.collector.memoryLimitMiB }}
stream: {replicas: {{ .Values.nats.streamReplicas }}}
{{ include "rampart.clickhouseConfig" . }}
{{- end -}}
