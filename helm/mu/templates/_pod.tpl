{{/*
The pod template of a component. Argument: dict "root" $ "component" name.
*/}}
{{- define "mu.podTemplate" -}}
{{- $root := .root }}
{{- $c := .component }}
{{- $v := index $root.Values (include "mu.valuesKey" $c) }}
{{- $env := upper (replace "-" "_" $c) }}
{{- $gossip := or (eq $c "gateway") (eq $c "runtime") }}
{{- $http := or (eq $c "gateway") (eq $c "storage") }}
metadata:
  labels:
    {{- include "mu.labels" (dict "root" $root "component" $c) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "mu.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automount }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with $root.Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $c }}
      image: {{ include "mu.image" (dict "root" $root "component" $c) | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["--config", "/etc/mu/{{ $c }}.yaml"]
      env:
        - name: POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: MU_{{ $env }}_NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- if $gossip }}
        - name: MU_{{ $env }}_CLUSTER_ADVERTISE_ADDR
          value: "$(POD_IP):7946"
        {{- end }}
        {{- if eq $c "storage" }}
        - name: MU_STORAGE_S3_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $root.Values.s3.existingSecret }}
              key: {{ $root.Values.s3.accessKeyKey }}
        - name: MU_STORAGE_S3_SECRET_KEY
          valueFrom:
            secretKeyRef:
              name: {{ $root.Values.s3.existingSecret }}
              key: {{ $root.Values.s3.secretKeyKey }}
        - name: MU_STORAGE_URL_SIGNING_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "mu.urlKeySecretName" $root }}
              key: key
        {{- end }}
      ports:
        - name: grpc
          containerPort: 9090
          protocol: TCP
        - name: admin
          containerPort: 9091
          protocol: TCP
        {{- if $http }}
        - name: http
          containerPort: 8080
          protocol: TCP
        {{- end }}
        {{- if $gossip }}
        - name: gossip-tcp
          containerPort: 7946
          protocol: TCP
        - name: gossip-udp
          containerPort: 7946
          protocol: UDP
        {{- end }}
      {{- if eq $c "runtime" }}
      startupProbe:
        httpGet:
          port: admin
          path: /healthz
        periodSeconds: {{ $v.startupProbe.periodSeconds }}
        failureThreshold: {{ $v.startupProbe.failureThreshold }}
        timeoutSeconds: 2
      {{- end }}
      # On the admin port (plain HTTP, never public): the gRPC port requires
      # a client certificate, which the kubelet's grpc probe cannot present.
      # /readyz is 200 when the service is ready (its readiness checks pass:
      # what grpc.health.v1 "" says); /healthz from start to shutdown, so a
      # service waiting on TiKV or the ledger is taken out of its Service,
      # not restarted.
      readinessProbe:
        httpGet:
          port: admin
          path: /readyz
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 2
      livenessProbe:
        httpGet:
          port: admin
          path: /healthz
        {{- if ne $c "runtime" }}
        initialDelaySeconds: 10
        {{- end }}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 6
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/mu
          readOnly: true
        - name: data
          mountPath: /var/lib/mu
        - name: tmp
          mountPath: /tmp
        {{- if eq $c "billing" }}
        - name: signer
          mountPath: /var/run/mu/signer
          readOnly: true
        {{- end }}
        {{- if and (has $c (list "billing" "chain-indexer")) (eq $root.Values.ledger.backend "solana") }}
        - name: fee-payer
          mountPath: /var/run/mu/fee-payer
          readOnly: true
        {{- end }}
        {{- if $root.Values.tls.enabled }}
        - name: tls
          mountPath: {{ include "mu.tlsDir" $root }}
          readOnly: true
        {{- if $root.Values.tls.caSecret }}
        - name: tls-ca
          mountPath: {{ include "mu.tlsCADir" $root }}
          readOnly: true
        {{- end }}
        {{- end }}
        {{- if and $gossip $root.Values.gossip.encryption.enabled }}
        - name: gossip
          mountPath: {{ include "mu.gossipDir" $root }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "mu.fullname" $root }}-config
    {{- if not (and (eq $c "runtime") $v.persistence.enabled) }}
    - name: data
      emptyDir: {}
    {{- end }}
    - name: tmp
      emptyDir: {}
    {{- if eq $c "billing" }}
    - name: signer
      secret:
        secretName: {{ $root.Values.ledger.signer.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ $root.Values.ledger.signer.key }}
            path: {{ $root.Values.ledger.signer.key }}
    {{- end }}
    {{- if and (has $c (list "billing" "chain-indexer")) (eq $root.Values.ledger.backend "solana") }}
    - name: fee-payer
      secret:
        secretName: {{ $root.Values.ledger.solana.feePayerSecret }}
        defaultMode: 0440
        items:
          - key: {{ $root.Values.ledger.solana.feePayerKey }}
            path: {{ $root.Values.ledger.solana.feePayerKey }}
    {{- end }}
    {{- /* Whole-Secret volumes (no subPath): the kubelet swaps updated files in, the services re-read them. */}}
    {{- if $root.Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ include "mu.tlsSecretName" (dict "root" $root "component" $c) }}
        defaultMode: 0440
        items:
          - key: tls.crt
            path: tls.crt
          - key: tls.key
            path: tls.key
          {{- if not $root.Values.tls.caSecret }}
          - key: ca.crt
            path: ca.crt
          {{- end }}
    {{- with $root.Values.tls.caSecret }}
    - name: tls-ca
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - key: ca.crt
            path: ca.crt
    {{- end }}
    {{- end }}
    {{- if and $gossip $root.Values.gossip.encryption.enabled }}
    - name: gossip
      secret:
        secretName: {{ include "mu.gossipSecretName" $root }}
        defaultMode: 0440
        items:
          - key: key
            path: key
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
