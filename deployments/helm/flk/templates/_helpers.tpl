{{/* Names and labels ------------------------------------------------------------------------------ */}}
{{- define "flk.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What every FLK pod carries: the databases' NetworkPolicies let exactly these pods in. */}}
{{- define "flk.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flk.labels" -}}
{{ include "flk.selectorLabels" . }}
app.kubernetes.io/part-of: flk
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "flk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flk.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flk.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "flk.walClaim" -}}
{{- default (printf "%s-wal" (include "flk.fullname" .)) .Values.wal.persistence.existingClaim -}}
{{- end -}}

{{/* ALLOWED_HOSTS: the configured names, the ingress hosts and the probes' Host. */}}
{{- define "flk.allowedHosts" -}}
{{- $hosts := concat .Values.config.allowedHosts .Values.ingress.hosts (list .Values.web.probes.host) -}}
{{- if and (eq .Values.mtls.mode "nginx") .Values.mtls.nginx.serverName -}}
{{- $hosts = append $hosts .Values.mtls.nginx.serverName -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}

{{/* Pod-level metadata shared by every FLK pod: the mesh switch, the user's annotations. */}}
{{- define "flk.podAnnotations" -}}
{{- $annotations := dict -}}
{{- if eq .Values.mtls.mode "mesh" -}}
{{- $annotations = merge $annotations .Values.mtls.mesh.podAnnotations -}}
{{- end -}}
{{- $annotations = merge $annotations .Values.podAnnotations -}}
{{- if $annotations -}}
{{ toYaml $annotations }}
{{- end -}}
{{- end -}}

{{/* The environment of every FLK process: settings from values, secrets from existing Secrets. */}}
{{- define "flk.env" -}}
- name: DJANGO_SETTINGS_MODULE
  value: {{ .Values.config.settingsModule | quote }}
- name: REGION_ID
  value: {{ .Values.config.regionId | quote }}
- name: ALLOWED_HOSTS
  value: {{ include "flk.allowedHosts" . | quote }}
- name: MULTI_TENANT
  value: {{ .Values.config.multiTenant | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: WAL_DIR
  value: {{ .Values.wal.mountPath | quote }}
- name: WAL_FSYNC
  value: {{ .Values.config.walFsync | quote }}
- name: PROMETHEUS_MULTIPROC_DIR
  value: /tmp/prometheus
{{- with .Values.config.s3 }}
{{- if .endpointUrl }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ .endpointUrl | quote }}
- name: AUDIT_ANCHOR_S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
- name: TIER_COLD_S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
- name: REPORTS_S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
- name: CRR_S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
{{- end }}
{{- if .region }}
- name: AWS_DEFAULT_REGION
  value: {{ .region | quote }}
- name: AUDIT_ANCHOR_S3_REGION
  value: {{ .region | quote }}
- name: TIER_COLD_S3_REGION
  value: {{ .region | quote }}
- name: REPORTS_S3_REGION
  value: {{ .region | quote }}
- name: CRR_S3_REGION
  value: {{ .region | quote }}
{{- end }}
{{- /* An unset bucket leaves its setting to the application's default (a directory under
FLK_VAR_DIR, read-only in these pods): production names all three. */}}
{{- if .anchorBucket }}
- name: AUDIT_ANCHOR_S3_BUCKET
  value: {{ .anchorBucket | quote }}
- name: AUDIT_ANCHOR_LOCK_MODE
  value: {{ .anchorLockMode | quote }}
- name: AUDIT_ANCHOR_RETENTION_DAYS
  value: {{ .anchorRetentionDays | int64 | quote }}
{{- end }}
{{- if .coldBucket }}
- name: TIER_COLD_BUCKET
  value: {{ .coldBucket | quote }}
{{- end }}
{{- if .reportsBucket }}
- name: REPORTS_BUCKET
  value: {{ .reportsBucket | quote }}
{{- end }}
{{- end }}
{{- with .Values.config.regions }}
- name: WAL_REPLICATION_ENABLED
  value: {{ .replicationEnabled | quote }}
- name: WAL_REMOTE_BUCKET
  value: {{ join "," .remoteBuckets | quote }}
- name: REGION_BUCKET
  value: {{ .bucket | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name := list "DJANGO_SECRET_KEY" "FLK_ENCRYPTION_KEYS" "AUDIT_SIGNING_KEY_B64" "METRICS_PASS" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "existingSecrets.app names the Secret of the application's keys" $.Values.existingSecrets.app }}
      key: {{ $name }}
{{- end }}
- name: PCS_HMAC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecrets.app }}
      key: PCS_HMAC_KEY
      optional: true
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "existingSecrets.database names the Secret holding DATABASE_URL" .Values.existingSecrets.database }}
      key: DATABASE_URL
{{- range $name := list "REDIS_URL" "CELERY_BROKER_URL" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "existingSecrets.redis names the Secret holding REDIS_URL and CELERY_BROKER_URL" $.Values.existingSecrets.redis }}
      key: {{ $name }}
{{- end }}
{{- if .Values.existingSecrets.s3 }}
{{- range $name := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecrets.s3 }}
      key: {{ $name }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod spec fields every FLK pod shares. */}}
{{- define "flk.podCommon" -}}
serviceAccountName: {{ include "flk.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The volumes of an FLK container: /tmp (metrics files, beat's schedule) and, if asked, the WAL. */}}
{{- define "flk.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .wal }}
- name: wal
  mountPath: {{ .root.Values.wal.mountPath }}
{{- end }}
{{- end -}}

{{- define "flk.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .wal }}
- name: wal
  {{- if or .root.Values.wal.persistence.enabled .root.Values.wal.persistence.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ include "flk.walClaim" .root }}
  {{- else }}
  # No persistence: the WAL lives as long as the pod (requests not yet decided are lost with it).
  emptyDir: {}
  {{- end }}
{{- end }}
{{- end -}}
