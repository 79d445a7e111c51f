package runtime

import (
	"context"
	"testing"

	"github.com/muprotocol/mu/libs/fnproto"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/libs/manifest"
)

// TestHostHandler_RepliesByClass sends the handler of a node without muDB
// and storage one request of each class, including the first and last kind
// of each range, and checks that each gets its class's error reply, and
// that a control message is refused.
func TestHostHandler_RepliesByClass(t *testing.T) {
	m := &manifest.Manifest{}
	d := &deployment{
		db:      (&dbBridge{maxFrame: fnproto.DefaultMaxFrameSize}).forStack(ids.StackID{1}, m),
		storage: (&storageBridge{maxFrame: fnproto.DefaultMaxFrameSize, maxUploads: 1, maxListed: 1000}).forStack(ids.StackID{1}, m),
	}
	host := d.newCall()
	defer host.end()
	h := host.handle
	tests := []struct {
		in   fnproto.Message
		want fnproto.Kind // 0: the handler returns an error
	}{
		{&fnproto.Put{Table: "t"}, fnproto.KindDbError},
		{&fnproto.Get{Table: "t"}, fnproto.KindDbError},
		{&fnproto.CompareAndSwap{Table: "t"}, fnproto.KindDbError},
		{&fnproto.PutExpiring{Table: "t", TTLSeconds: 1}, fnproto.KindDbError},
		{&fnproto.BatchScanKeysPage{}, fnproto.KindDbError},
		{&fnproto.TableList{}, fnproto.KindDbError},
		{&fnproto.StoragePut{Storage: "s"}, fnproto.KindStorageError},
		{&fnproto.StorageList{Storage: "s"}, fnproto.KindStorageError},
		{&fnproto.StorageGetRange{Storage: "s"}, fnproto.KindStorageError},
		{&fnproto.StoragePutChunk{Upload: 1}, fnproto.KindStorageError},
		{&fnproto.StorageSignURL{Storage: "s"}, fnproto.KindStorageError},
		{&fnproto.HTTPRequest{Method: "GET"}, fnproto.KindHTTPResponse},
		{&fnproto.Log{Body: "x"}, 0},
		{&fnproto.FunctionResult{}, 0},
	}
	for _, tc := range tests {
		name := fnproto.KindName(tc.in.Direction(), tc.in.Kind())
		reply, err := h(context.Background(), tc.in)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%s: reply %T, want an error", name, reply)
			}
			continue
		}
		if err != nil || reply == nil || reply.Kind() != tc.want || reply.Direction() != fnproto.ToFunction {
			t.Errorf("%s: (%v, %v), want a %s", name, reply, err, fnproto.KindName(fnproto.ToFunction, tc.want))
			continue
		}
		if r, ok := reply.(*fnproto.DbError); ok && r.Error != "muDB is not configured on this runtime node ("+name+")" {
			t.Errorf("%s: DbError %q", name, r.Error)
		}
		if r, ok := reply.(*fnproto.StorageError); ok && r.Error != "storage is not configured on this runtime node ("+name+")" {
			t.Errorf("%s: StorageError %q", name, r.Error)
		}
		if r, ok := reply.(*fnproto.HTTPResponse); ok && (r.Error == nil || *r.Error == "") {
			t.Errorf("%s: HTTPResponse without an error", name)
		}
	}
}
