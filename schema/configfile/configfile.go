// Package configfile loads a component's YAML configuration strictly: an
// unknown key is an error naming it, so a typo never silently falls back
// to a default.
package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// Load decodes the YAML file at path into v, which holds the defaults.
// An empty path leaves v unchanged.
func Load(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := Decode(data, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Decode strictly decodes YAML data into v.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
