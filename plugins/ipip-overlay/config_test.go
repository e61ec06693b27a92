package main

import (
	"testing"

	"github.com/netloom/netloom/internal/doccheck"
	"github.com/netloom/netloom/pkg/overlay"
)

// TestREADMENamesEveryKey keeps README.md honest: every key the overlay configuration accepts is
// documented (the other overlay's keys too, as refused ones).
func TestREADMENamesEveryKey(t *testing.T) {
	doccheck.RequireKeysInREADME(t, "README.md", overlay.NetConf{})
}
