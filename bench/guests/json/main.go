// Command json is the fuel benchmark's small JSON handler (see mu.yaml):
// order decodes a small JSON order and answers its total as JSON, the
// shape of a typical API handler's work (decode, a little logic, encode).
package main

import (
	mu "github.com/muprotocol/mu/sdk/go"
)

type order struct {
	Item      string   `json:"item"`
	Quantity  int      `json:"quantity"`
	UnitCents int      `json:"unit_cents"`
	Tags      []string `json:"tags"`
}

type total struct {
	Item       string `json:"item"`
	Quantity   int    `json:"quantity"`
	TotalCents int    `json:"total_cents"`
	Tags       int    `json:"tags"`
}

func handleOrder(_ *mu.Context, req *mu.Request) (*mu.Response, error) {
	var o order
	if err := req.JSON(&o); err != nil {
		return mu.Text(400, err.Error()), nil
	}
	return mu.JSON(200, total{Item: o.Item, Quantity: o.Quantity, TotalCents: o.Quantity * o.UnitCents, Tags: len(o.Tags)})
}

func main() {
	mu.Handle("order", handleOrder)
	mu.Run()
}
