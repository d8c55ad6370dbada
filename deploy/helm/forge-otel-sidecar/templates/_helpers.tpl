{{/* Names and labels shared by every template. */}}

{{- define "forge-otel-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "forge-otel-sidecar.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "forge-otel-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forge-otel-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "forge-otel-sidecar.labels" -}}
{{ include "forge-otel-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "forge-otel-sidecar.secretName" -}}
{{- default (printf "%s-api-token" (include "forge-otel-sidecar.fullname" .)) .Values.apiToken.existingSecret }}
{{- end }}

{{/* Where the Secret is mounted; the config's forge.api_token_file points into it. */}}
{{- define "forge-otel-sidecar.tokenDir" -}}
/var/run/secrets/forge
{{- end }}

{{- define "forge-otel-sidecar.stateDir" -}}
/var/lib/forge-otel-sidecar
{{- end }}

{{/* The sidecar's config file, as a dict. */}}
{{- define "forge-otel-sidecar.config" -}}
{{- $forge := dict "email" .Values.forge.email "api_token_file" (printf "%s/%s" (include "forge-otel-sidecar.tokenDir" .) .Values.apiToken.key) }}
{{- if .Values.forge.baseUrl }}
{{- $_ := set $forge "base_url" .Values.forge.baseUrl }}
{{- end }}
{{- $config := dict
  "forge" $forge
  "sources" .Values.sources
  "exporter" .Values.exporter
  "state" (dict "dir" (include "forge-otel-sidecar.stateDir" .) "dead_letter_max_size" .Values.deadLetterMaxSize)
  "server" (dict "listen" (printf "0.0.0.0:%d" (int .Values.port)))
  "log" (dict "format" "json") }}
{{- toYaml (mustMergeOverwrite $config (deepCopy .Values.extraConfig)) }}
{{- end }}
