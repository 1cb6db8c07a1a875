{{/* The chart's name. */}}
{{- define "aws-secret-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name when it contains the chart's name. */}}
{{- define "aws-secret-controller.fullname" -}}
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

{{/* The labels that select the controller's Pods. */}}
{{- define "aws-secret-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aws-secret-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels. */}}
{{- define "aws-secret-controller.labels" -}}
{{ include "aws-secret-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "aws-secret-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aws-secret-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image: repository@digest when a digest is set, else repository:tag (appVersion). */}}
{{- define "aws-secret-controller.image" -}}
{{- if eq .Values.image.tag "latest" }}
{{- fail "image.tag latest is refused: a moving tag makes every restart a possible upgrade; pin a release tag or a digest" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The RBAC rules on AWSSecrets, Secrets and events, for the ClusterRole or the Role. */}}
{{- define "aws-secret-controller.rules" -}}
- apiGroups: ["mumoshu.github.io"]
  resources: ["awssecrets"]
  verbs: ["list", "watch"]
- apiGroups: ["mumoshu.github.io"]
  resources: ["awssecrets/status"]
  verbs: ["update"]
- apiGroups: ["mumoshu.github.io"]
  resources: ["awssecrets/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch", "get", "create", "update", "delete"]
{{- if not .Values.namespaceScoped }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
