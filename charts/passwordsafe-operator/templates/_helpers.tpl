{{/* Chart name, cut to 63 characters (the limit of a label value). */}}
{{- define "passwordsafe-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full object name: the release name, with the chart name appended unless the release name already contains it,
so release `passwordsafe-operator` names every object `passwordsafe-operator` (the names deploy/ uses).
*/}}
{{- define "passwordsafe-operator.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "passwordsafe-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "passwordsafe-operator.labels" -}}
helm.sh/chart: {{ include "passwordsafe-operator.chart" . }}
{{ include "passwordsafe-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the operator's pods (Deployment selector, Service, PDB, NetworkPolicy). */}}
{{- define "passwordsafe-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "passwordsafe-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "passwordsafe-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "passwordsafe-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (default tag: the appVersion). */}}
{{- define "passwordsafe-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when the operator runs with --leader-elect: more than one replica, or asked for. */}}
{{- define "passwordsafe-operator.leaderElect" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/* "true" when a PodDisruptionBudget is rendered. */}}
{{- define "passwordsafe-operator.pdb" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.podDisruptionBudget.enabled }}true{{ end }}
{{- end }}

{{/* Name of the Secret holding the operator's HMAC key (fixed in the operator: controller::HMAC_SECRET). */}}
{{- define "passwordsafe-operator.hmacSecretName" -}}
passwordsafe-operator-hmac-key
{{- end }}

{{/* The RBAC subject: the operator's ServiceAccount. */}}
{{- define "passwordsafe-operator.subjects" -}}
subjects:
  - kind: ServiceAccount
    name: {{ include "passwordsafe-operator.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
