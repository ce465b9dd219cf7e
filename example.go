// Package tagwatch holds what the binary embeds from the repository root:
// config.example.yml, printed by `tagwatch config example`. The file stays
// where users look for it; embed cannot reach it from cmd/tagwatch.
package tagwatch

import _ "embed"

// ExampleConfig is config.example.yml.
//
//go:embed config.example.yml
var ExampleConfig string
