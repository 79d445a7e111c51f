package region

import (
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/muprotocol/mu/libs/certs"
	"github.com/muprotocol/mu/libs/ids"
	"github.com/muprotocol/mu/services/gateway"
	"github.com/muprotocol/mu/services/runtime"
)

// runtimeSerial dials the runtime afresh as the region's operator and
// returns the serial number of the certificate its handshake presented.
func runtimeSerial(t *testing.T, r *Region) *big.Int {
	t.Helper()
	cc, err := grpc.NewClient(r.Runtime().Addr(), r.TLS().DialOption(certs.RoleRuntime))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var pr peer.Peer
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Peer(&pr)); err != nil {
		t.Fatalf("health of the runtime over mTLS: %v", err)
	}
	return pr.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber
}

// TestProcesses_MTLSServesTodoAndRotatesTheRuntimeCertificateUnderLoad
// runs muDB, the runtime and the gateway as child processes with mTLS on
// every gRPC link (certificates from the region's throwaway CA), serves
// the todo app end to end (gateway → runtime → muDB), then rewrites the
// runtime's certificate while GETs run: no request fails, and a new
// connection to the runtime sees the new certificate.
func TestProcesses_MTLSServesTodoAndRotatesTheRuntimeCertificateUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service commands")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	r, err := Start(ctx, Options{
		Mode:    Processes,
		DataDir: dataDir,
		TLS:     &TLSOptions{ReloadInterval: 100 * time.Millisecond},
		Mudb:    &MudbOptions{},
		Runtime: &RuntimeOptions{Config: func(_ int, c *runtime.Config) { c.CallTimeout = 5 * time.Second }},
		Gateway: &GatewayOptions{Config: func(c *gateway.Config) { c.InvokeTimeout = 10 * time.Second }},
		Process: ProcessOptions{RepoDir: repo, LogDir: t.TempDir(), StopTimeout: 20 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if r.CertsDir() != filepath.Join(dataDir, "certs") {
		t.Fatalf("certs in %q", r.CertsDir())
	}
	for _, f := range []string{"ca.crt", "runtime-runtime.crt", "runtime-runtime.key", "gateway-gateway.crt", "mudb-mudb.crt", "operator-region.crt"} {
		if _, err := os.Stat(filepath.Join(r.CertsDir(), f)); err != nil {
			t.Errorf("region certificate files: %v", err)
		}
	}
	// The runtime's gRPC port refuses plaintext.
	plain, err := grpc.NewClient(r.Runtime().Addr(), plainRegion().tls.DialOption(certs.RoleRuntime))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("the runtime answered a plaintext health check")
	}
	plain.Close()

	id, _, _ := ids.NewStackID()
	todo := deployTodo(t, r, id)
	todo.want("POST", "/", "ann", `{"title":"milk"}`, 201, "")
	todo.want("GET", "/", "ann", "", 200, `[{"title":"milk","done":false}]`)

	before := runtimeSerial(t, r)
	lctx, stop := context.WithCancel(ctx)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				err := getTodo(todo.base + "/")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for ok.Load()+failed.Load() < 50 { // load is running
		time.Sleep(5 * time.Millisecond)
	}
	is, err := r.RotateCertificate(certs.RoleRuntime, "runtime")
	if err != nil {
		t.Fatal(err)
	}
	var got *big.Int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = runtimeSerial(t, r); got.Cmp(is.Cert.SerialNumber) == 0 {
			break
		}
	}
	rotatedAt := ok.Load() + failed.Load()
	for ok.Load()+failed.Load() < rotatedAt+50 { // load after the swap too
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if got.Cmp(is.Cert.SerialNumber) != 0 {
		t.Errorf("a new connection to the runtime sees serial %x (before: %x), want the rotated %x", got, before, is.Cert.SerialNumber)
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d GETs failed across the rotation; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	t.Logf("%d GETs across the rotation, %d failed", ok.Load()+failed.Load(), failed.Load())
	// The stack's data still flows through the rotated runtime.
	todo.want("GET", "/", "ann", "", 200, `[{"title":"milk","done":false}]`)
}

// getTodo lists ann's todos and returns an error unless it gets 200.
func getTodo(url string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("x-user-id", "ann")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "milk") {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

// TestProcesses_MTLSExecutorServesTodo runs a mu-executor child (gateway,
// runtime and storage in one process, each part with a certificate of its
// role) with the region's muDB in another, all over mTLS, and serves todo
// through them.
func TestProcesses_MTLSExecutorServesTodo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service commands")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Start(ctx, Options{
		Mode:      Processes,
		DataDir:   t.TempDir(),
		TLS:       &TLSOptions{},
		Mudb:      &MudbOptions{},
		Executors: &ExecutorOptions{Nodes: 1},
		Process:   ProcessOptions{RepoDir: repo, LogDir: t.TempDir(), StopTimeout: 20 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for _, f := range []string{"runtime-executor-1.crt", "gateway-executor-1-gateway.crt", "runtime-executor-1-runtime.crt", "storage-executor-1-storage.crt"} {
		if _, err := os.Stat(filepath.Join(r.CertsDir(), f)); err != nil {
			t.Errorf("executor certificate files: %v", err)
		}
	}
	// The executor's parts refuse plaintext.
	for _, addr := range []string{r.Gateway().grpcAddr, r.Runtime().Addr()} {
		plain, err := grpc.NewClient(addr, plainRegion().tls.DialOption(certs.RoleRuntime))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
			t.Errorf("%s answered a plaintext health check", addr)
		}
		plain.Close()
	}
	id, _, _ := ids.NewStackID()
	todo := deployTodo(t, r, id)
	todo.want("POST", "/", "ann", `{"title":"milk"}`, 201, "")
	todo.want("GET", "/", "ann", "", 200, `[{"title":"milk","done":false}]`)
}
