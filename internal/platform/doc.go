// Package platform is the plumbing every tuturu service shares: configuration from flags and
// environment, the Connect server with reflection, health and graceful stop, token
// interceptors, inter-service clients, telemetry and logging. It knows no service.
package platform
