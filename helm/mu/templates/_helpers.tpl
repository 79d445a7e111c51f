{{/* The chart's name. */}}
{{- define "mu.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects are <fullname>-<service>, so it is kept to 40 characters. */}}
{{- define "mu.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mu.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The services, in the order objects are rendered. */}}
{{- define "mu.components" -}}
gateway runtime mudb storage chain-indexer billing
{{- end }}

{{/* The values key of a component: chain-indexer → chainIndexer. Argument: the component. */}}
{{- define "mu.valuesKey" -}}
{{- if eq . "chain-indexer" }}chainIndexer{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* Selector labels. Argument: dict "root" $ "component" name. */}}
{{- define "mu.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mu.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels. Argument: dict "root" $ "component" name. */}}
{{- define "mu.labels" -}}
{{ include "mu.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: mu
helm.sh/chart: {{ include "mu.chart" .root }}
{{- end }}

{{/* Labels of objects shared by all components (ConfigMap, Secrets, ServiceAccount). */}}
{{- define "mu.commonLabels" -}}
app.kubernetes.io/name: {{ include "mu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mu
helm.sh/chart: {{ include "mu.chart" . }}
{{- end }}

{{/* Image of a component. Argument: dict "root" $ "component" name. */}}
{{- define "mu.image" -}}
{{- $v := index .root.Values (include "mu.valuesKey" .component) }}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- with $v.image }}{{ with .tag }}{{ $tag = . }}{{ end }}{{ end }}
{{- printf "%s/%s/mu-%s:%s" .root.Values.image.registry .root.Values.image.repository .component $tag }}
{{- end }}

{{- define "mu.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mu.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* gRPC address of a component's Service. Argument: dict "root" $ "component" name. */}}
{{- define "mu.grpcAddr" -}}
{{- printf "%s-%s.%s.svc:9090" (include "mu.fullname" .root) .component .root.Release.Namespace }}
{{- end }}

{{/* Gossip join address: the runtime headless Service (resolves to every runtime pod). */}}
{{- define "mu.clusterJoin" -}}
{{- printf "%s-runtime.%s.svc:7946" (include "mu.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "mu.gossipSecretName" -}}
{{- default (printf "%s-gossip" (include "mu.fullname" .)) .Values.gossip.encryption.existingSecret }}
{{- end }}

{{/* The Secret holding a component's certificate (tls.crt, tls.key, ca.crt). Argument: dict "root" $ "component" name. */}}
{{- define "mu.tlsSecretName" -}}
{{- $v := index .root.Values (include "mu.valuesKey" .component) }}
{{- $existing := "" }}
{{- with $v.tls }}{{ $existing = .existingSecret }}{{ end }}
{{- default (printf "%s-%s-tls" (include "mu.fullname" .root) .component) $existing }}
{{- end }}

{{/* Where the pods mount their certificate, the CA bundle and the gossip keys. */}}
{{- define "mu.tlsDir" -}}/var/run/mu/tls{{- end }}
{{- define "mu.tlsCADir" -}}/var/run/mu/tls-ca{{- end }}
{{- define "mu.gossipDir" -}}/var/run/mu/gossip{{- end }}

{{/*
The transport security settings every service shares: the certificate files (or plaintext: true
with tls.enabled false).
*/}}
{{- define "mu.tlsSettings" -}}
{{- if .Values.tls.enabled }}
tls_cert_file: {{ include "mu.tlsDir" . }}/tls.crt
tls_key_file: {{ include "mu.tlsDir" . }}/tls.key
tls_ca_file: {{ ternary (include "mu.tlsCADir" .) (include "mu.tlsDir" .) (not (empty .Values.tls.caSecret)) }}/ca.crt
{{- with .Values.tls.reloadInterval }}
tls_reload_interval: {{ . }}
{{- end }}
{{- else }}
plaintext: true
{{- end }}
{{- end }}

{{/* The gossip encryption settings of the gateways and runtimes. */}}
{{- define "mu.gossipSettings" -}}
{{- if .Values.gossip.encryption.enabled }}
cluster_secret_key_file: {{ include "mu.gossipDir" . }}/key
{{- else }}
cluster_plaintext: true
{{- end }}
{{- end }}

{{- define "mu.urlKeySecretName" -}}
{{- default (printf "%s-storage-url-key" (include "mu.fullname" .)) .Values.storage.urlSigningKey.existingSecret }}
{{- end }}

{{/* Base URL of an ingress: https when it has tls. Argument: the ingress values. */}}
{{- define "mu.ingressURL" -}}
{{- if and .enabled .hosts }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .tls))) (first .hosts) }}
{{- end }}
{{- end }}

{{/* The gateway's public_url: gateway.publicURL, else the first ingress host. */}}
{{- define "mu.gatewayPublicURL" -}}
{{- default (include "mu.ingressURL" .Values.gateway.ingress) .Values.gateway.publicURL }}
{{- end }}

{{- define "mu.storagePublicURL" -}}
{{- default (include "mu.ingressURL" .Values.storage.ingress) .Values.storage.publicURL }}
{{- end }}

{{/* The required values, checked with messages that name them (the schema checks them too). */}}
{{- define "mu.validate" -}}
{{- $pd := required "tikv.pdEndpoints is required: the PD endpoints of your TiKV cluster (host:port each)" .Values.tikv.pdEndpoints }}
{{- $_ := required "s3.bucket is required: the S3 bucket holding the region's storage boxes and binaries" .Values.s3.bucket }}
{{- $_ = required "s3.existingSecret is required: a Secret with the S3 access key (key s3.accessKeyKey) and secret key (key s3.secretKeyKey)" .Values.s3.existingSecret }}
{{- $_ = required "ledger.regionId is required: the base58 address of your region on the marketplace" .Values.ledger.regionId }}
{{- $_ = required "ledger.signer.existingSecret is required: a Secret holding the region's usage signer keypair JSON (key ledger.signer.key)" .Values.ledger.signer.existingSecret }}
{{- if eq .Values.ledger.backend "solana" }}
{{- $_ = required "ledger.solana.rpcURL is required with ledger.backend solana: the JSON-RPC endpoint of a Solana node" .Values.ledger.solana.rpcURL }}
{{- $_ = required "ledger.solana.feePayerSecret is required with ledger.backend solana: a Secret holding the fee payer's keypair JSON (key ledger.solana.feePayerKey)" .Values.ledger.solana.feePayerSecret }}
{{- else if ne .Values.ledger.backend "local" }}
{{- fail (printf "ledger.backend %q is not supported: \"local\" or \"solana\"" .Values.ledger.backend) }}
{{- end }}
{{- end }}

{{/* The ledger_* settings of the chain indexer and billing for the Solana backend (a dict). */}}
{{- define "mu.solanaSettings" -}}
{{- with .Values.ledger.solana }}
ledger_backend: solana
ledger_solana_rpc_url: {{ .rpcURL | quote }}
{{- if .wsURL }}
ledger_solana_ws_url: {{ .wsURL | quote }}
{{- end }}
ledger_solana_program_id: {{ .programID | quote }}
ledger_solana_commitment: {{ .commitment | quote }}
ledger_solana_fee_payer_keypair: {{ printf "/var/run/mu/fee-payer/%s" .feePayerKey | quote }}
{{- end }}
{{- end }}

{{/*
A service's YAML settings: the base dict, then the component's config merged last.
Argument: dict "root" $ "component" name "base" dict.
*/}}
{{- define "mu.configFile" -}}
{{- $v := index .root.Values (include "mu.valuesKey" .component) }}
{{- $merged := mustMergeOverwrite (dict) .base (deepCopy (default (dict) $v.config)) }}
{{- if $merged.plaintext }}{{ "# plaintext: true: b18-certs wires TLS\n" }}{{ end }}
{{- toYaml $merged }}
{{- end }}
