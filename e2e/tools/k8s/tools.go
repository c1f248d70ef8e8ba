//go:build tools

// Package tools pins the Kubernetes commands the local test stack builds.
package tools
