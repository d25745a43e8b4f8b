{{/* The Ward image: repository@digest when pinned, else repository:tag. */}}
{{- define "ward.image" -}}
{{ .Values.images.ward.repository }}{{ if .Values.images.ward.digest }}@{{ .Values.images.ward.digest }}{{ else }}:{{ .Values.images.ward.tag }}{{ end }}
{{- end -}}
