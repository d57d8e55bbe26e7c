{{- define "kube-vrrp.name" -}}kube-vrrp{{- end -}}

{{- define "kube-vrrp.image" -}}
{{- $repo := required "image.repository is required: no kube-vrrp image is published yet. Build one (bash image/rootfs.sh && docker build -t REGISTRY/kube-vrrp:0.1.0 .), push it, and install with --set image.repository=REGISTRY/kube-vrrp" .Values.image.repository -}}
{{ $repo }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kube-vrrp.labels" -}}
app.kubernetes.io/name: kube-vrrp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
