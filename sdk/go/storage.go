package mu

import "github.com/muprotocol/mu/libs/fnproto"

// Object describes one object in a storage box.
type Object = fnproto.StorageObject

// Box is one of the stack's storage boxes (a Storage service in the
// manifest). Its methods block until the runtime answers and fail with a
// *StorageError when the storage service reports an error.
type Box struct {
	ctx  *Context
	name string
}

// Storage returns the storage box called name. No request is made until a
// method is called.
func (ctx *Context) Storage(name string) *Box { return &Box{ctx: ctx, name: name} }

// Name returns the box's name.
func (b *Box) Name() string { return b.name }

// Put stores data under key, replacing any object there.
func (b *Box) Put(key string, data []byte) error {
	return b.empty(&fnproto.StoragePut{Storage: b.name, Key: key, Data: data}, key)
}

// Get returns the object stored under key; found is false if there is none.
func (b *Box) Get(key string) (data []byte, found bool, err error) {
	m, err := b.ctx.c.exchange(b.ctx, &fnproto.StorageGet{Storage: b.name, Key: key})
	if err != nil {
		return nil, false, err
	}
	switch r := m.(type) {
	case *fnproto.StorageGetResult:
		if r.Data == nil {
			return nil, false, nil
		}
		return nonNil(*r.Data), true, nil
	case *fnproto.StorageError:
		return nil, false, &StorageError{Op: "StorageGet", Box: b.name, Key: key, Message: r.Error}
	}
	return nil, false, b.ctx.c.unexpected(fnproto.KindStorageGet, m)
}

// Delete removes the object under key; deleting a missing object is not an
// error.
func (b *Box) Delete(key string) error {
	return b.empty(&fnproto.StorageDelete{Storage: b.name, Key: key}, key)
}

// List returns the objects whose key starts with prefix (all if empty).
func (b *Box) List(prefix string) ([]Object, error) {
	m, err := b.ctx.c.exchange(b.ctx, &fnproto.StorageList{Storage: b.name, Prefix: prefix})
	if err != nil {
		return nil, err
	}
	switch r := m.(type) {
	case *fnproto.ObjectListResult:
		return r.List, nil
	case *fnproto.StorageError:
		return nil, &StorageError{Op: "StorageList", Box: b.name, Key: prefix, Message: r.Error}
	}
	return nil, b.ctx.c.unexpected(fnproto.KindStorageList, m)
}

// empty runs a request answered by StorageEmptyResult.
func (b *Box) empty(req fnproto.Message, key string) error {
	m, err := b.ctx.c.exchange(b.ctx, req)
	if err != nil {
		return err
	}
	switch r := m.(type) {
	case *fnproto.StorageEmptyResult:
		return nil
	case *fnproto.StorageError:
		return &StorageError{Op: fnproto.KindName(fnproto.FromFunction, req.Kind()), Box: b.name, Key: key, Message: r.Error}
	}
	return b.ctx.c.unexpected(req.Kind(), m)
}
