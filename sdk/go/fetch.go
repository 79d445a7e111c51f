package mu

import "github.com/muprotocol/mu/libs/fnproto"

// Fetch makes an outgoing HTTP request through the runtime and returns the
// response, whatever its status. url must be absolute. It fails with a
// *FetchError when the request could not be made at all.
func (ctx *Context) Fetch(method, url string, body []byte, headers ...Header) (*Response, error) {
	m, err := ctx.c.exchange(ctx, &fnproto.HTTPRequest{Method: method, URL: url, Headers: headers, Body: body})
	if err != nil {
		return nil, err
	}
	r, ok := m.(*fnproto.HTTPResponse)
	if !ok {
		return nil, ctx.c.unexpected(fnproto.KindHTTPRequest, m)
	}
	if r.Error != nil {
		return nil, &FetchError{Method: method, URL: url, Message: *r.Error}
	}
	return &Response{Status: int(r.Status), Headers: r.Headers, Body: r.Body}, nil
}
