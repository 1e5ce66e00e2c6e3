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

// LoadSection strictly decodes one top-level key of the YAML file at path
// into v, ignoring the file's other keys: tools such as `rampart migrate`
// read the clickhouse section of a component's file this way.
func LoadSection(path, key string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	node, ok := top[key]
	if !ok {
		return fmt.Errorf("config %s: no %q section", path, key)
	}
	section, err := yaml.Marshal(&node)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := Decode(section, v); err != nil {
		return fmt.Errorf("config %s: %s: %w", path, key, err)
	}
	return nil
}
