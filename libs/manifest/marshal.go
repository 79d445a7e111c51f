package manifest

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

type yamlManifest struct {
	Name     string        `yaml:"name"`
	Version  string        `yaml:"version"`
	Services []yamlService `yaml:"services"`
}

type yamlService struct {
	Type        string                    `yaml:"type"`
	Name        string                    `yaml:"name"`
	Binary      string                    `yaml:"binary,omitempty"`
	Runtime     string                    `yaml:"runtime,omitempty"`
	MemoryLimit string                    `yaml:"memory_limit,omitempty"`
	Env         map[string]string         `yaml:"env,omitempty"`
	Endpoints   map[string][]yamlEndpoint `yaml:"endpoints,omitempty"`
	Public      bool                      `yaml:"public,omitempty"`
}

type yamlEndpoint struct {
	Method  string `yaml:"method"`
	RouteTo string `yaml:"route_to"`
}

// Marshal writes m as YAML: functions, tables, storages, then gateways, each
// endpoint in the list form with a lower-case method, sizes in their shortest
// exact unit. For a valid m, Parse(Marshal(m)) returns a Manifest equal to m
// (with endpoints sorted and an empty Env as nil). Marshal does not validate.
func (m *Manifest) Marshal() ([]byte, error) {
	y := yamlManifest{Name: m.Name, Version: m.Version, Services: []yamlService{}}
	for _, f := range m.Functions {
		s := yamlService{Type: TypeFunction, Name: f.Name, Binary: f.Binary, Runtime: f.Runtime, Env: f.Env}
		if f.MemoryLimit != 0 {
			s.MemoryLimit = f.MemoryLimit.String()
		}
		y.Services = append(y.Services, s)
	}
	for _, t := range m.Tables {
		y.Services = append(y.Services, yamlService{Type: TypeKeyValueTable, Name: t.Name})
	}
	for _, s := range m.Storages {
		y.Services = append(y.Services, yamlService{Type: TypeStorage, Name: s.Name, Public: s.Public})
	}
	for _, g := range m.Gateways {
		s := yamlService{Type: TypeGateway, Name: g.Name}
		if len(g.Endpoints) > 0 {
			s.Endpoints = map[string][]yamlEndpoint{}
		}
		for _, e := range g.Endpoints {
			s.Endpoints[e.Path] = append(s.Endpoints[e.Path],
				yamlEndpoint{Method: strings.ToLower(e.Method), RouteTo: e.RouteTo})
		}
		y.Services = append(y.Services, s)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(y); err != nil {
		return nil, fmt.Errorf("manifest: marshal %q: %w", m.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("manifest: marshal %q: %w", m.Name, err)
	}
	return buf.Bytes(), nil
}
