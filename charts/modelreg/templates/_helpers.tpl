{{- define "modelreg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "modelreg.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelreg.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelreg.serviceAccountName" -}}
{{- default (include "modelreg.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "modelreg.webhookService" -}}{{ include "modelreg.fullname" . }}-webhook{{- end -}}
{{- define "modelreg.sealSecret" -}}{{ default (printf "%s-seal-key" (include "modelreg.fullname" .)) .Values.sealKey.existingSecret }}{{- end -}}
{{- define "modelreg.webhookTlsSecret" -}}{{ include "modelreg.fullname" . }}-webhook-tls{{- end -}}

{{/* One webhook entry: the same name, path and rules the operator (kopf) registers. */}}
{{- define "modelreg.webhook" -}}
- name: {{ .id }}.modelreg.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: {{ .policy }}
  matchPolicy: Equivalent
  timeoutSeconds: {{ .timeout }}
  clientConfig:
    service:
      name: {{ .service }}
      namespace: {{ .namespace }}
      path: /{{ .id }}
  {{- if .namespaces }}
  namespaceSelector:  # only where the operator watches: it can read nothing elsewhere
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values: {{ .namespaces | toJson }}
  {{- end }}
  rules:
    - apiGroups: [modelreg.io]
      apiVersions: [v1alpha1]
      resources: [{{ .resource }}]
      operations: {{ .operations | default (list "CREATE" "UPDATE") | toJson }}
      scope: Namespaced
  {{- /* The operator's own writes, which these webhooks always allow: the API server does not
  call them for those (one call fewer per status or label write of every version and promotion). */}}
  {{- if .skipOperator }}
  matchConditions:
    - name: not-the-operator
      expression: {{ printf "request.userInfo.username != %q" .operator | squote }}
  {{- end }}
{{- end -}}

{{/* The webhook client CA file in the operator's pod; empty when none is configured. */}}
{{- define "modelreg.clientCAFile" -}}
{{- $ca := .Values.webhook.clientCA }}
{{- if and $ca.existingSecret $ca.configMap }}
{{- fail "webhook.clientCA: set existingSecret or configMap, not both" }}
{{- end }}
{{- if or $ca.existingSecret $ca.configMap }}
{{- printf "/var/run/modelreg/client-ca/%s" $ca.key }}
{{- end }}
{{- end }}
