{{/*
One service of the pipeline: its Deployment and Service. Every service has the same shape; the
per-service files only name it: {{ include "lfr.workload" (dict "root" . "name" "detect") }}
*/}}
{{- define "lfr.workload" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := index $root.Values.services $name -}}
{{- $prefix := printf "LFR_%s_" (upper $name) -}}
{{- /* Services that serve a gRPC API with the shared bearer tokens. */ -}}
{{- $api := hasKey $svc "grpcPort" -}}
{{- /* ...and those that check the bearer tokens: the APIs, and the console's sign-in. */ -}}
{{- $tokens := or $api (eq $name "console") -}}
{{- /* ...and those that read deployments' data keys: every stage and the APIs, not the console. */ -}}
{{- $kek := ne $name "console" -}}
{{- $policy := and (eq $name "deployments") $root.Values.policy.existingConfigMap -}}
{{- /* The stream stages: consumers of a topic, scaled on their consumer lag. */ -}}
{{- $inputs := dict "detect" "frames.captured.v1" "embed" "faces.detected.v1" "match" "faces.embedded.v1" "alert" "matches.found.v1" -}}
{{- $stream := hasKey $inputs $name -}}
{{- $scaled := and $stream $root.Values.autoscaling.enabled -}}
{{- $gpu := and (hasKey $svc "gpu") $svc.gpu -}}
{{- $partitions := int $root.Values.topics.partitions -}}
{{- if and $svc.enabled $stream (gt (int $svc.replicas) $partitions) }}
{{- fail (printf "services.%s.replicas (%d) is over topics.partitions (%d): a replica beyond the partitions would get none and idle" $name (int $svc.replicas) $partitions) }}
{{- end }}
{{- if and $svc.enabled $scaled (gt (int $root.Values.autoscaling.maxReplicas) $partitions) }}
{{- fail (printf "autoscaling.maxReplicas (%d) is over topics.partitions (%d): replicas beyond the partitions would idle" (int $root.Values.autoscaling.maxReplicas) $partitions) }}
{{- end }}
{{- if and $svc.enabled (eq $name "deployments") (gt (int $svc.replicas) 1) }}
{{- fail "services.deployments.replicas is over 1: the control plane runs as one replica (its janitor and enrolment locks are per process); scale the stages instead" }}
{{- end }}
{{- if $svc.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  {{- if not $scaled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  selector:
    matchLabels: {{- include "lfr.selector" . | nindent 6 }}
  template:
    metadata:
      labels: {{- include "lfr.selector" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $svc.httpPort | quote }}
        prometheus.io/path: /metrics
    spec:
      securityContext: {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $name }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["lfr_{{ $name }}"]
          envFrom:
            - configMapRef:
                name: {{ include "lfr.fullname" $root }}-platform
          env:
            - name: {{ $prefix }}HTTP_HOST
              value: "0.0.0.0"
            - name: {{ $prefix }}HTTP_PORT
              value: {{ $svc.httpPort | quote }}
            {{- if $api }}
            - name: {{ $prefix }}GRPC_HOST
              value: "0.0.0.0"
            - name: {{ $prefix }}GRPC_PORT
              value: {{ $svc.grpcPort | quote }}
            {{- end }}
            {{- if $tokens }}
            - name: LFR_AUTH_TOKENS_FILE
              value: /etc/lfr/auth/{{ $root.Values.auth.key }}
            {{- end }}
            {{- if $policy }}
            - name: LFR_DEPLOYMENTS_POLICY_FILE
              value: /etc/lfr/policy/{{ $root.Values.policy.key }}
            {{- end }}
            {{- if $kek }}
            - name: LFR_KEY_ENCRYPTION_KEY_FILE
              value: /etc/lfr/kek/{{ $root.Values.keyEncryptionKey.key }}
            {{- end }}
            {{- if $root.Values.redis.existingSecret }}
            - name: LFR_REDIS_URL
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.redis.existingSecret }}
                  key: {{ $root.Values.redis.key }}
            {{- end }}
            {{- if eq $name "console" }}
            - name: LFR_CONSOLE_WEB_HOST
              value: "0.0.0.0"
            - name: LFR_CONSOLE_WEB_PORT
              value: {{ $svc.webPort | quote }}
            - name: LFR_CONSOLE_ALERT_ADDRESS
              value: {{ printf "%s-alert:%v" (include "lfr.fullname" $root) $root.Values.services.alert.grpcPort | quote }}
            - name: LFR_CONSOLE_DEPLOYMENT_ADDRESS
              value: {{ printf "%s-deployments:%v" (include "lfr.fullname" $root) $root.Values.services.deployments.grpcPort | quote }}
            - name: LFR_CONSOLE_BEHIND_TLS_PROXY
              value: {{ and $svc.ingress.enabled (not (empty $svc.ingress.tlsSecret)) | quote }}
            {{- if $svc.sessionKey.existingSecret }}
            - name: LFR_CONSOLE_SESSION_KEY_FILE
              value: /etc/lfr/console/{{ $svc.sessionKey.key }}
            {{- else if gt (int $svc.replicas) 1 }}
            {{- fail "services.console.replicas > 1 needs services.console.sessionKey.existingSecret (replicas must share the session key)" }}
            {{- end }}
            {{- end }}
            {{- if or (eq $name "match") (eq $name "deployments") }}
            - name: LFR_WATCHLIST_QDRANT_URL
              value: {{ required "qdrant.url: the Qdrant server (watchlists must outlive pods; match replicas share them)" $root.Values.qdrant.url | quote }}
            {{- /* The janitor drops collections of no open deployment: releases sharing a server need their own prefix. */}}
            - name: LFR_WATCHLIST_COLLECTION_PREFIX
              value: {{ printf "%s-" (include "lfr.fullname" $root) | quote }}
            {{- end }}
            {{- if $stream }}
            {{- /* The most replicas this stage runs: it refuses to start on an input with fewer partitions. */}}
            - name: LFR_STAGE_REPLICAS
              value: {{ (ternary $root.Values.autoscaling.maxReplicas $svc.replicas $scaled) | quote }}
            - name: LFR_REPLICA_NAME
              valueFrom:
                fieldRef: {fieldPath: metadata.name}
            {{- end }}
            {{- if eq $name "ingest" }}
            - name: LFR_INGEST_VAN_ID
              value: {{ $svc.vanId | quote }}
            - name: LFR_INGEST_CAMERAS
              value: {{ $svc.cameras | toJson | quote }}
            {{- end }}
            {{- range $key, $value := $svc.env }}
            - name: {{ $key }}
              value: {{ $value | quote }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $svc.httpPort }}
            {{- if $api }}
            - name: grpc
              containerPort: {{ $svc.grpcPort }}
            {{- end }}
            {{- if eq $name "console" }}
            - name: web
              containerPort: {{ $svc.webPort }}
            {{- end }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
          {{- $resources := deepCopy $svc.resources }}
          {{- if $gpu }}
          {{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" 1) ($resources.limits | default dict)) }}
          {{- end }}
          resources: {{- toYaml $resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: ["ALL"]}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $tokens }}
            - name: auth
              mountPath: /etc/lfr/auth
              readOnly: true
            {{- end }}
            {{- if and (eq $name "console") $svc.sessionKey.existingSecret }}
            - name: session-key
              mountPath: /etc/lfr/console
              readOnly: true
            {{- end }}
            {{- if $kek }}
            - name: kek
              mountPath: /etc/lfr/kek
              readOnly: true
            {{- end }}
            {{- if $policy }}
            - name: policy
              mountPath: /etc/lfr/policy
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if $tokens }}
        - name: auth
          secret:
            secretName: {{ required "auth.existingSecret: the Secret with the API tokens" $root.Values.auth.existingSecret }}
        {{- end }}
        {{- if and (eq $name "console") $svc.sessionKey.existingSecret }}
        - name: session-key
          secret:
            secretName: {{ $svc.sessionKey.existingSecret }}
        {{- end }}
        {{- if $kek }}
        - name: kek
          secret:
            secretName: {{ required "keyEncryptionKey.existingSecret: the Secret with the key-encryption key (32 random bytes)" $root.Values.keyEncryptionKey.existingSecret }}
            defaultMode: 0400
        {{- end }}
        {{- if $policy }}
        - name: policy
          configMap:
            name: {{ $policy }}
        {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity: {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- $tolerations := $svc.tolerations | default list }}
      {{- if $gpu }}
      {{- $tolerations = append $tolerations (dict "key" "nvidia.com/gpu" "operator" "Exists" "effect" "NoSchedule") }}
      {{- end }}
      {{- with $tolerations }}
      tolerations: {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  selector: {{- include "lfr.selector" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $svc.httpPort }}
      targetPort: http
    {{- if $api }}
    - name: grpc
      port: {{ $svc.grpcPort }}
      targetPort: grpc
    {{- end }}
    {{- if eq $name "console" }}
    - name: web
      port: {{ $svc.webPort }}
      targetPort: web
    {{- end }}
{{- if and $root.Values.podDisruptionBudget.enabled (or $scaled (gt (int $svc.replicas) 1)) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels: {{- include "lfr.selector" . | nindent 6 }}
{{- end }}
{{- $net := $root.Values.networkPolicy }}
{{- if $net.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels: {{- include "lfr.selector" . | nindent 6 }}
  policyTypes: [Ingress{{ if $net.egress }}, Egress{{ end }}]
  {{- /* Rules with no peers would admit everyone: an empty list of peers adds no rule. */}}
  ingress:
    {{- if $net.metricsFrom }}
    - from: {{- toYaml $net.metricsFrom | nindent 8 }}
      ports: [{port: http}]
    {{- end }}
    {{- if $api }}
    - from:
        - podSelector:
            matchLabels: {{- include "lfr.selector" (dict "root" $root "name" "console") | nindent 14 }}
        {{- with $net.apiFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports: [{port: grpc}]
    {{- end }}
    {{- if and (eq $name "console") $net.consoleFrom }}
    - from: {{- toYaml $net.consoleFrom | nindent 8 }}
      ports: [{port: web}]
    {{- end }}
  {{- if $net.egress }}
  egress:
    - ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ $root.Release.Name }}
    {{- toYaml $net.egress | nindent 4 }}
  {{- end }}
{{- end }}
{{- if $scaled }}
---
{{- if $root.Values.autoscaling.keda }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ include "lfr.fullname" $root }}-{{ $name }}
  minReplicaCount: {{ $svc.replicas }}
  maxReplicaCount: {{ $root.Values.autoscaling.maxReplicas }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrapServers | quote }}
        consumerGroup: {{ printf "%s%s" $root.Values.topics.prefix $name | quote }}
        topic: {{ printf "%s%s" $root.Values.topics.prefix (index $inputs $name) | quote }}
        lagThreshold: {{ $root.Values.autoscaling.lagThreshold | quote }}
      {{- with $root.Values.autoscaling.kafkaAuthentication }}
      authenticationRef:
        name: {{ . }}
      {{- end }}
{{- else }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "lfr.fullname" $root }}-{{ $name }}
  minReplicas: {{ $svc.replicas }}
  maxReplicas: {{ $root.Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $root.Values.autoscaling.cpuUtilization }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
