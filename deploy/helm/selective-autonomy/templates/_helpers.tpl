{{/*
Names. Kubernetes names are DNS labels: at most 63 characters.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "selective-autonomy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: `<release>-<name>` (or the release name alone when it already contains the
name), truncated to 63 characters.
*/}}
{{- define "selective-autonomy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of one component's resources: the fullname shortened so that `-<component>` always fits in 63
characters (components never collide after truncation).
Usage: include "selective-autonomy.componentName" (dict "ctx" $ "component" "worker")
*/}}
{{- define "selective-autonomy.componentName" -}}
{{- $max := sub 62 (len .component) | int -}}
{{- printf "%s-%s" (include "selective-autonomy.fullname" .ctx | trunc $max | trimSuffix "-") .component -}}
{{- end -}}

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "selective-autonomy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels. Selector labels are name + instance only (plus the component, which keeps one component's
Service, Deployment and PDB from selecting another component's pods); they never include
commonLabels or podLabels, so changing those never breaks an immutable selector.
*/}}

{{/* Selector labels: name and instance. */}}
{{- define "selective-autonomy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "selective-autonomy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Selector labels of one component.
Usage: include "selective-autonomy.componentSelectorLabels" (dict "ctx" $ "component" "worker")
*/}}
{{- define "selective-autonomy.componentSelectorLabels" -}}
{{ include "selective-autonomy.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Standard labels of one component's resources: commonLabels, then the standard labels (which win).
Usage: include "selective-autonomy.labels" (dict "ctx" $ "component" "worker")
*/}}
{{- define "selective-autonomy.labels" -}}
{{- $ctx := .ctx -}}
{{- $standard := dict
  "helm.sh/chart" (include "selective-autonomy.chart" $ctx)
  "app.kubernetes.io/version" ($ctx.Chart.AppVersion | toString)
  "app.kubernetes.io/managed-by" $ctx.Release.Service
  "app.kubernetes.io/part-of" "selective-autonomy"
-}}
{{- $selector := include "selective-autonomy.componentSelectorLabels" . | fromYaml -}}
{{- $labels := merge $selector $standard (deepCopy ($ctx.Values.commonLabels | default dict)) -}}
{{- toYaml $labels -}}
{{- end -}}

{{/*
Pod template labels: the component's labels plus its podLabels (the standard labels win).
Usage: include "selective-autonomy.podLabels" (dict "ctx" $ "component" "worker" "podLabels" .Values.worker.podLabels)
*/}}
{{- define "selective-autonomy.podLabels" -}}
{{- $labels := include "selective-autonomy.labels" . | fromYaml -}}
{{- toYaml (merge $labels (deepCopy (.podLabels | default dict))) -}}
{{- end -}}

{{/*
Images.
*/}}

{{/* The selauto image: registry/repository@digest, or :tag (default: the chart's appVersion). */}}
{{- define "selective-autonomy.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s/%s@%s" $img.registry $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $img.registry $img.repository (default .Chart.AppVersion $img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The vLLM image. */}}
{{- define "selective-autonomy.vllmImage" -}}
{{- $img := .Values.vllm.image -}}
{{- if $img.digest -}}
{{- printf "%s/%s@%s" $img.registry $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $img.registry $img.repository ($img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* ServiceAccount name. */}}
{{- define "selective-autonomy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "selective-autonomy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Secrets. Each credential lives either in the chart's Secret (<fullname>) or in an existingSecret.
*/}}

{{/* True ("true") when the Kafka security protocol uses SASL. */}}
{{- define "selective-autonomy.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "selective-autonomy.kafkaSaslSecretName" -}}
{{- default (include "selective-autonomy.fullname" .) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{- define "selective-autonomy.kafkaSaslUsernameKey" -}}
{{- ternary .Values.kafka.sasl.existingSecretUsernameKey "kafka-sasl-username" (not (empty .Values.kafka.sasl.existingSecret)) -}}
{{- end -}}

{{- define "selective-autonomy.kafkaSaslPasswordKey" -}}
{{- ternary .Values.kafka.sasl.existingSecretPasswordKey "kafka-sasl-password" (not (empty .Values.kafka.sasl.existingSecret)) -}}
{{- end -}}

{{/* True when the chart's own Secrets must carry the SASL credentials. */}}
{{- define "selective-autonomy.chartSaslSecret" -}}
{{- if and (include "selective-autonomy.saslEnabled" .) (not .Values.kafka.sasl.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "selective-autonomy.consoleSecretName" -}}
{{- default (include "selective-autonomy.fullname" .) .Values.console.existingSecret -}}
{{- end -}}

{{/* Key of the operators JSON object (operator id -> token) in the console's Secret. */}}
{{- define "selective-autonomy.consoleOperatorsKey" -}}
{{- ternary .Values.console.existingSecretOperatorsKey "console-operators" (not (empty .Values.console.existingSecret)) -}}
{{- end -}}

{{/* Key of the session-cookie signing key in the console's Secret. */}}
{{- define "selective-autonomy.consoleSecretKeyKey" -}}
{{- ternary .Values.console.existingSecretSecretKeyKey "console-secret-key" (not (empty .Values.console.existingSecret)) -}}
{{- end -}}

{{/* True when the chart's own Secret carries the console credentials. */}}
{{- define "selective-autonomy.chartConsoleSecret" -}}
{{- if and .Values.console.enabled (not .Values.console.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Whether the session cookie is HTTPS-only: console.cookieSecure, or (null) whether the Ingress has TLS. */}}
{{- define "selective-autonomy.consoleCookieSecure" -}}
{{- $secure := .Values.console.cookieSecure -}}
{{- if kindIs "invalid" $secure -}}
{{- $secure = and .Values.console.ingress.enabled (not (empty .Values.console.ingress.tls)) -}}
{{- end -}}
{{- ternary "true" "false" (eq (toString $secure) "true") -}}
{{- end -}}

{{/*
pod annotation `checksum/secret` of the chart's Secret, so that changed credentials roll the pods
(their env reads the Secret only at start). Empty when the chart renders no Secret.
*/}}
{{- define "selective-autonomy.secretChecksum" -}}
{{- $secret := include (print .Template.BasePath "/secret.yaml") . -}}
{{- if trim $secret -}}
checksum/secret: {{ $secret | sha256sum }}
{{- end -}}
{{- end -}}

{{/* True when a feedback store DSN is configured (inline or existingSecret). */}}
{{- define "selective-autonomy.storeEnabled" -}}
{{- if or .Values.store.url .Values.store.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "selective-autonomy.storeSecretName" -}}
{{- default (include "selective-autonomy.fullname" .) .Values.store.existingSecret -}}
{{- end -}}

{{- define "selective-autonomy.storeSecretKey" -}}
{{- ternary .Values.store.existingSecretKey "store-url" (not (empty .Values.store.existingSecret)) -}}
{{- end -}}

{{/*
Schema Registry. Every schemaRegistry value applies only with schemaRegistry.url set. Files are
mounted under /etc/selauto/schema-registry-* and named in the settings file; the credentials reach
the processes as SELAUTO_SCHEMA_REGISTRY__* env vars from a Secret.
*/}}

{{/* True when the registry takes basic auth (inline credentials or an existingSecret). */}}
{{- define "selective-autonomy.registryAuthEnabled" -}}
{{- $auth := .Values.schemaRegistry.basicAuth -}}
{{- if and .Values.schemaRegistry.url (or $auth.existingSecret $auth.username $auth.password) -}}true{{- end -}}
{{- end -}}

{{- define "selective-autonomy.registrySecretName" -}}
{{- default (include "selective-autonomy.fullname" .) .Values.schemaRegistry.basicAuth.existingSecret -}}
{{- end -}}

{{- define "selective-autonomy.registryUsernameKey" -}}
{{- ternary .Values.schemaRegistry.basicAuth.existingSecretUsernameKey "schema-registry-username" (not (empty .Values.schemaRegistry.basicAuth.existingSecret)) -}}
{{- end -}}

{{- define "selective-autonomy.registryPasswordKey" -}}
{{- ternary .Values.schemaRegistry.basicAuth.existingSecretPasswordKey "schema-registry-password" (not (empty .Values.schemaRegistry.basicAuth.existingSecret)) -}}
{{- end -}}

{{/* True when the chart's own Secret carries the registry's basic auth credentials. */}}
{{- define "selective-autonomy.chartRegistrySecret" -}}
{{- if and (include "selective-autonomy.registryAuthEnabled" .) (not .Values.schemaRegistry.basicAuth.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* True when the registry's CA bundle is mounted. */}}
{{- define "selective-autonomy.registryCa" -}}
{{- if and .Values.schemaRegistry.url .Values.schemaRegistry.tls.caSecret -}}true{{- end -}}
{{- end -}}

{{/* True when a client certificate for mutual TLS with the registry is mounted. */}}
{{- define "selective-autonomy.registryClientCert" -}}
{{- if and .Values.schemaRegistry.url .Values.schemaRegistry.tls.clientSecret -}}true{{- end -}}
{{- end -}}

{{/*
Checks that the schema cannot express; rendered (empty) by the ConfigMap so that every install fails
early with a clear message.
*/}}
{{- define "selective-autonomy.validate" -}}
{{- if include "selective-autonomy.saslEnabled" . -}}
{{- if not .Values.kafka.saslMechanism -}}
{{- fail (printf "kafka.saslMechanism is required with kafka.securityProtocol=%s" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if not (or .Values.kafka.sasl.existingSecret (and .Values.kafka.sasl.username .Values.kafka.sasl.password)) -}}
{{- fail "SASL needs kafka.sasl.existingSecret or both kafka.sasl.username and kafka.sasl.password" -}}
{{- end -}}
{{- end -}}
{{- $auth := .Values.schemaRegistry.basicAuth -}}
{{- if and .Values.schemaRegistry.url (or $auth.username $auth.password) (not $auth.existingSecret) -}}
{{- if not (and $auth.username $auth.password) -}}
{{- fail "Schema Registry basic auth needs schemaRegistry.basicAuth.existingSecret or both schemaRegistry.basicAuth.username and schemaRegistry.basicAuth.password" -}}
{{- end -}}
{{- end -}}
{{- if .Values.vllm.enabled -}}
{{- $_ := required "vllm.model.existingClaim is required when vllm.enabled" .Values.vllm.model.existingClaim -}}
{{- $_ := required "vllm.model.path is required when vllm.enabled" .Values.vllm.model.path -}}
{{- $_ := required "vllm.model.servedModelName is required when vllm.enabled" .Values.vllm.model.servedModelName -}}
{{- $lora := .Values.vllm.lora -}}
{{- $models := .Values.worker.models -}}
{{- if $lora.enabled -}}
{{- if not $models.existingClaim -}}
{{- fail "vllm.lora.enabled needs worker.models.existingClaim: vLLM reads the adapters the learner publishes from the workers' models claim (an emptyDir per pod cannot be shared)" -}}
{{- end -}}
{{- if eq (clean $models.mountPath) (clean .Values.vllm.model.mountPath) -}}
{{- fail (printf "vllm.lora.enabled mounts worker.models.existingClaim at worker.models.mountPath (%s) in the vLLM pod: set vllm.model.mountPath to another path (e.g. /base-model)" $models.mountPath) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $lora.maxCpuLoras)) (lt (int $lora.maxCpuLoras) (int $lora.maxLoras)) -}}
{{- fail (printf "vllm.lora.maxCpuLoras (%d) must be at least vllm.lora.maxLoras (%d)" (int $lora.maxCpuLoras) (int $lora.maxLoras)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The settings file (SELAUTO_CONFIG_FILE): snake_case keys of selective_autonomy.config.Settings, then
the free-form `settings` map merged on top (it wins). Credentials never go here: they come from
Secrets as SELAUTO_* env vars, which win over the file.
*/}}
{{- define "selective-autonomy.settingsFile" -}}
{{- $v := .Values -}}
{{- $kafka := dict
  "bootstrap_servers" $v.kafka.bootstrapServers
  "profile" $v.kafka.profile
  "security_protocol" $v.kafka.securityProtocol
  "client_id" $v.kafka.clientId
-}}
{{- if $v.kafka.saslMechanism -}}
{{- $_ := set $kafka "sasl_mechanism" $v.kafka.saslMechanism -}}
{{- end -}}
{{- if $v.kafka.tls.caSecret -}}
{{- $_ := set $kafka "ssl_ca_location" "/etc/selauto/kafka-ca/ca.crt" -}}
{{- end -}}
{{- with $v.kafka.extra -}}
{{- $_ := set $kafka "extra" (deepCopy .) -}}
{{- end -}}
{{- $topics := dict
  "ui_state" $v.topics.uiState
  "actions_proposed" $v.topics.actionsProposed
  "actions_executed" $v.topics.actionsExecuted
  "operator_deferrals" $v.topics.operatorDeferrals
  "copilot_feedback" $v.topics.copilotFeedback
  "dead_letter" $v.topics.deadLetter
  "partitions" ($v.topics.partitions | int)
  "replication_factor" ($v.topics.replicationFactor | int)
-}}
{{- $settings := dict "kafka" $kafka "topics" $topics "wire_format" $v.wireFormat "app_id" $v.appId -}}
{{- if $v.schemaRegistry.url -}}
{{- $r := $v.schemaRegistry -}}
{{- /* An empty (or null) compatibility is written as null: selauto then leaves the subject's level alone. */ -}}
{{- $registry := dict "url" $r.url "compatibility" nil -}}
{{- with $r.compatibility -}}
{{- $_ := set $registry "compatibility" . -}}
{{- end -}}
{{- if kindIs "bool" $r.autoRegister -}}
{{- $_ := set $registry "auto_register" $r.autoRegister -}}
{{- end -}}
{{- if not (kindIs "invalid" $r.timeoutS) -}}
{{- $_ := set $registry "timeout_s" $r.timeoutS -}}
{{- end -}}
{{- if not (kindIs "invalid" $r.maxRetries) -}}
{{- $_ := set $registry "max_retries" ($r.maxRetries | int) -}}
{{- end -}}
{{- if include "selective-autonomy.registryCa" . -}}
{{- $_ := set $registry "ssl_ca_location" "/etc/selauto/schema-registry-ca/ca.crt" -}}
{{- end -}}
{{- if include "selective-autonomy.registryClientCert" . -}}
{{- $_ := set $registry "ssl_certificate_location" "/etc/selauto/schema-registry-client/tls.crt" -}}
{{- $_ := set $registry "ssl_key_location" "/etc/selauto/schema-registry-client/tls.key" -}}
{{- end -}}
{{- $_ := set $settings "schema_registry" $registry -}}
{{- end -}}
{{- toYaml (mergeOverwrite $settings (deepCopy ($v.settings | default dict))) -}}
{{- end -}}

{{/*
Shared pieces of the selauto containers (worker, console, executor, topic Job).
*/}}

{{/*
Environment common to every selauto container.
Usage: include "selective-autonomy.env" (dict "ctx" $ "component" "worker" "saslSecret" "<name>")
`saslSecret` overrides the Secret name of chart-managed SASL credentials (the hook Job uses its own).
*/}}
{{- define "selective-autonomy.env" -}}
{{- $ctx := .ctx -}}
{{- $v := $ctx.Values -}}
- name: SELAUTO_CONFIG_FILE
  value: /etc/selauto/config/settings.yaml
- name: SELAUTO_DATA_DIR
  value: {{ $v.worker.data.mountPath | quote }}
{{- if include "selective-autonomy.saslEnabled" $ctx }}
{{- $secret := include "selective-autonomy.kafkaSaslSecretName" $ctx }}
{{- if and .saslSecret (not $v.kafka.sasl.existingSecret) }}
{{- $secret = .saslSecret }}
{{- end }}
- name: SELAUTO_KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "selective-autonomy.kafkaSaslUsernameKey" $ctx }}
- name: SELAUTO_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "selective-autonomy.kafkaSaslPasswordKey" $ctx }}
{{- end }}
{{- if and (include "selective-autonomy.storeEnabled" $ctx) (ne .component "topics") }}
- name: SELAUTO_STORE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "selective-autonomy.storeSecretName" $ctx }}
      key: {{ include "selective-autonomy.storeSecretKey" $ctx }}
{{- end }}
{{- /* The topic Job only creates topics: it builds no codec and never talks to the registry. */}}
{{- if and (include "selective-autonomy.registryAuthEnabled" $ctx) (ne .component "topics") }}
- name: SELAUTO_SCHEMA_REGISTRY__USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "selective-autonomy.registrySecretName" $ctx }}
      key: {{ include "selective-autonomy.registryUsernameKey" $ctx }}
- name: SELAUTO_SCHEMA_REGISTRY__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "selective-autonomy.registrySecretName" $ctx }}
      key: {{ include "selective-autonomy.registryPasswordKey" $ctx }}
{{- end }}
{{- if and (include "selective-autonomy.registryClientCert" $ctx) $v.schemaRegistry.tls.clientSecretKeyPasswordKey (ne .component "topics") }}
- name: SELAUTO_SCHEMA_REGISTRY__SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.schemaRegistry.tls.clientSecret }}
      key: {{ $v.schemaRegistry.tls.clientSecretKeyPasswordKey }}
{{- end }}
{{- $service := printf "%s-%s" (include "selective-autonomy.name" $ctx) .component }}
- name: SELAUTO_TELEMETRY__SERVICE_NAME
  value: {{ $service | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ $service | quote }}
{{- if $v.otel.endpoint }}
{{- $base := trimSuffix "/" $v.otel.endpoint }}
- name: SELAUTO_TELEMETRY__OTLP_ENDPOINT
  value: {{ ternary $base (printf "%s/v1/traces" $base) (hasSuffix "/v1/traces" $base) | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.otel.protocol | quote }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
- name: OTEL_METRICS_EXPORTER
  value: none
- name: OTEL_LOGS_EXPORTER
  value: none
{{- end }}
{{- $attrs := list (printf "k8s.namespace.name=%s" $ctx.Release.Namespace) (printf "service.namespace=%s" $ctx.Release.Name) }}
{{- range $k, $val := $v.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $val) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end -}}

{{/* volumeMounts common to every selauto container (config, /tmp, data, Kafka CA). */}}
{{- define "selective-autonomy.volumeMounts" -}}
- name: config
  mountPath: /etc/selauto/config
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.worker.data.mountPath }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/selauto/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
volumes common to every selauto pod.
Usage: include "selective-autonomy.volumes" (dict "ctx" $ "configMap" "<name>" "dataClaim" "<pvc or empty>" "dataSizeLimit" "<optional>")
`dataSizeLimit` sizes the emptyDir data volume (default: worker.data.sizeLimit).
*/}}
{{- define "selective-autonomy.volumes" -}}
{{- $v := .ctx.Values -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
- name: data
{{- if .dataClaim }}
  persistentVolumeClaim:
    claimName: {{ .dataClaim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .dataSizeLimit | default $v.worker.data.sizeLimit }}
{{- end }}
{{- if $v.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $v.kafka.tls.caSecret }}
    items:
      - key: {{ $v.kafka.tls.caSecretKey }}
        path: ca.crt
{{- end }}
{{- end -}}

{{/*
volumeMounts and volumes of the Schema Registry's CA bundle and client certificate, for the
containers that build a codec (worker, learner, console, executor; not the topic Job). Empty
without a registry. The paths are the ones the settings file names.
*/}}
{{- define "selective-autonomy.registryVolumeMounts" -}}
{{- if include "selective-autonomy.registryCa" . }}
- name: schema-registry-ca
  mountPath: /etc/selauto/schema-registry-ca
  readOnly: true
{{- end }}
{{- if include "selective-autonomy.registryClientCert" . }}
- name: schema-registry-client
  mountPath: /etc/selauto/schema-registry-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "selective-autonomy.registryVolumes" -}}
{{- $tls := .Values.schemaRegistry.tls -}}
{{- if include "selective-autonomy.registryCa" . }}
- name: schema-registry-ca
  secret:
    secretName: {{ $tls.caSecret }}
    items:
      - key: {{ $tls.caSecretKey }}
        path: ca.crt
{{- end }}
{{- if include "selective-autonomy.registryClientCert" . }}
- name: schema-registry-client
  secret:
    secretName: {{ $tls.clientSecret }}
    items:
      - key: {{ $tls.clientSecretCertKey }}
        path: tls.crt
      - key: {{ $tls.clientSecretKeyKey }}
        path: tls.key
{{- end }}
{{- end -}}

{{/*
SELAUTO_INFERENCE__* of the worker and learner containers: the in-chart vLLM server when enabled,
otherwise inference.url / inference.model when set, otherwise nothing.
*/}}
{{- define "selective-autonomy.inferenceEnv" -}}
{{- if .Values.vllm.enabled }}
- name: SELAUTO_INFERENCE__URL
  value: {{ printf "http://%s:%d/v1" (include "selective-autonomy.componentName" (dict "ctx" $ "component" "vllm")) (.Values.vllm.port | int) | quote }}
{{- /* With LoRA the request's model is the adapter's artefact version (policy and critic alike, the
critic on the same URL); SELAUTO_INFERENCE__MODEL would override it with one fixed name. */}}
{{- if not .Values.vllm.lora.enabled }}
- name: SELAUTO_INFERENCE__MODEL
  value: {{ .Values.vllm.model.servedModelName | quote }}
{{- end }}
{{- else if .Values.inference.url }}
- name: SELAUTO_INFERENCE__URL
  value: {{ .Values.inference.url | quote }}
{{- with .Values.inference.model }}
- name: SELAUTO_INFERENCE__MODEL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The role of a `selauto worker` container (SELAUTO_WORKER__DECIDE / __FEEDBACK / __LEARNING).
The worker Deployment decides only and scales with the ui.state partitions; the single learner
records feedback and runs the learning loop, the only writer of the models directory.
Usage: include "selective-autonomy.workerRoleEnv" (dict "decide" true "feedback" false "learning" false)
*/}}
{{- define "selective-autonomy.workerRoleEnv" -}}
- name: SELAUTO_WORKER__DECIDE
  value: {{ ternary "true" "false" .decide | quote }}
- name: SELAUTO_WORKER__FEEDBACK
  value: {{ ternary "true" "false" .feedback | quote }}
- name: SELAUTO_WORKER__LEARNING
  value: {{ ternary "true" "false" .learning | quote }}
{{- end -}}

{{/*
An httpGet probe from a values block.
Usage: include "selective-autonomy.probe" (dict "probe" .Values.worker.livenessProbe "path" "/healthz" "port" "health")
*/}}
{{- define "selective-autonomy.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}
