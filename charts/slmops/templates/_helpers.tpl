{{/* The chart's name, shortened to the 63 characters of a label value. */}}
{{- define "slmops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's name for its objects: the release name, with the chart's
name unless the release name already contains it. */}}
{{- define "slmops.fullname" -}}
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

{{- define "slmops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "slmops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slmops
{{- end }}

{{- define "slmops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slmops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "slmops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-manager" (include "slmops.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "slmops.managerImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "slmops.inferdImage" -}}
{{- printf "%s:%s" .Values.inferd.image.repository (default .Chart.AppVersion .Values.inferd.image.tag) }}
{{- end }}

{{/* The rules of a kind of role (ClusterRole or Role) in the RBAC that
controller-gen writes from the controllers' markers (files/role.yaml, a copy
of config/rbac/role.yaml that `make chart` keeps in step). */}}
{{- define "slmops.generatedRules" -}}
{{- $kind := .kind }}
{{- range $doc := regexSplit "(?m)^---\\s*$" (.root.Files.Get "files/role.yaml") -1 }}
{{- $obj := fromYaml $doc }}
{{- if and $obj (eq (get $obj "kind") $kind) }}
{{- toYaml (get $obj "rules") }}
{{- end }}
{{- end }}
{{- end }}
