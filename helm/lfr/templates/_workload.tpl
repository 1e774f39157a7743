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
{{- if $svc.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "lfr.fullname" $root }}-{{ $name }}
  labels: {{- include "lfr.labels" . | nindent 4 }}
spec:
  replicas: {{ $svc.replicas }}
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
              value: {{ printf "%s-match:%v" (include "lfr.fullname" $root) $root.Values.services.match.grpcPort | quote }}
            - name: LFR_CONSOLE_BEHIND_TLS_PROXY
              value: {{ and $svc.ingress.enabled (not (empty $svc.ingress.tlsSecret)) | quote }}
            {{- if $svc.sessionKey.existingSecret }}
            - name: LFR_CONSOLE_SESSION_KEY_FILE
              value: /etc/lfr/console/{{ $svc.sessionKey.key }}
            {{- else if gt (int $svc.replicas) 1 }}
            {{- fail "services.console.replicas > 1 needs services.console.sessionKey.existingSecret (replicas must share the session key)" }}
            {{- end }}
            {{- end }}
            {{- if eq $name "match" }}
            - name: LFR_MATCH_QDRANT_URL
              value: {{ required "qdrant.url: the Qdrant server (watchlists must outlive match pods)" $root.Values.qdrant.url | quote }}
            {{- /* The janitor drops collections of no open deployment: releases sharing a server need their own prefix. */}}
            - name: LFR_MATCH_COLLECTION_PREFIX
              value: {{ printf "%s-" (include "lfr.fullname" $root) | quote }}
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
          {{- if and (eq $name "embed") $svc.gpu }}
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
      {{- if and (eq $name "embed") $svc.gpu }}
      tolerations:
        - key: nvidia.com/gpu
          operator: Exists
          effect: NoSchedule
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
{{- end }}
{{- end -}}
