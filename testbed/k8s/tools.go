//go:build tools

// Package tools pins sigs.k8s.io/kwok in this module so that
// `go build sigs.k8s.io/kwok/cmd/kwok` shares go.mod/go.sum (and the
// compiled k8s.io/* packages) with cmd/kube.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
