// Package deploy holds the deployment's own files (Grafana provisioning and dashboard) and the
// tests that check the deployment without a Docker engine: compose.yaml through the loader
// `docker compose` uses, the Dockerfile and .dockerignore by parsing them, the dashboard's
// queries against the metric names the services register, and the compose environment
// against the variables the tuturu binary really reads.
package deploy
