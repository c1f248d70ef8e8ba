//go:build tools

// Package tools pins KWOK, which fakes nodes and pod lifecycles for the operator scale
// benchmark (`ferry-bench operator-scale`).
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
