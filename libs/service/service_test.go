package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func testBase() Base {
	b := DefaultBase("127.0.0.1:0", "127.0.0.1:0")
	b.ShutdownTimeout = 2 * time.Second
	b.Plaintext = true
	return b
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// panicky is a gRPC health server whose Check panics.
type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("boom")
}

func TestRunner_AdminServesMetricsHealthAndReadiness(t *testing.T) {
	r := NewRunner("svc", testBase(), RunnerOptions{})
	notReady := errors.New("warming up")
	var mu sync.Mutex
	readyErr := notReady
	r.AddReadiness("warm", func() error { mu.Lock(); defer mu.Unlock(); return readyErr })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(nil) })
	admin := "http://" + r.AdminAddr()

	if code, body := get(t, admin+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	healthOf := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health of %q: %v", service, err)
		}
		return hr.GetStatus()
	}
	if code, body := get(t, admin+"/readyz"); code != 503 || !strings.Contains(body, "warm: warming up") {
		t.Errorf("/readyz before ready = %d %q", code, body)
	}
	// A gRPC health probe (Kubernetes' grpc probe) agrees with /readyz.
	if s := healthOf(""); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc health before ready = %v", s)
	}
	if s := healthOf("grpc.health.v1.Health"); s != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("a named service's health = %v, want its own status", s)
	}
	if s := healthOf(LivenessService); s != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness before ready = %v: a service warming up is alive", s)
	}
	mu.Lock()
	readyErr = nil
	mu.Unlock()
	if code, _ := get(t, admin+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	if s := healthOf(""); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health when ready = %v", s)
	}
	code, body := get(t, admin+"/metrics")
	if code != 200 || !strings.Contains(body, `grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 4`) {
		t.Errorf("/metrics lacks the gRPC metrics of the health check: %d\n%s", code, body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Error("/metrics lacks the Go collector")
	}
	if code, _ := get(t, admin+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without Pprof: %d", code)
	}
}

func TestRunner_PprofWhenEnabled(t *testing.T) {
	b := testBase()
	b.Pprof = true
	r := NewRunner("svc", b, RunnerOptions{})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close(nil)
	if code, body := get(t, "http://"+r.AdminAddr()+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof = %d", code)
	}
}

func TestRunner_PanicInHandlerIsInternalError(t *testing.T) {
	b := testBase()
	b.AdminAddr = ""
	r := NewRunner("svc", b, RunnerOptions{Rules: Rules{"/test.Panicky/*": AnyRole}})
	// A second health service under another name, whose handler panics.
	desc := healthpb.Health_ServiceDesc
	desc.ServiceName = "test.Panicky"
	r.GRPC().RegisterService(&desc, panicky{})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Close(nil)
	if r.AdminAddr() != "" {
		t.Error("admin listener bound with AdminAddr empty")
	}
	conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Invoke(context.Background(), "/test.Panicky/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "svc: internal error") {
		t.Fatalf("got %v, want Internal", err)
	}
	// The server survived.
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestRunner_StartOnceCloseTwiceAndBeforeStart(t *testing.T) {
	r := NewRunner("svc", testBase(), RunnerOptions{})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start: %v", err)
	}
	drained := 0
	drain := func() error { drained++; return errors.New("drain failed") }
	if err := r.Close(drain); err == nil || !strings.Contains(err.Error(), "drain failed") {
		t.Errorf("Close: %v", err)
	}
	if err := r.Close(drain); err == nil || drained != 1 {
		t.Errorf("second Close: %v, drained %d times", err, drained)
	}
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("Start after Close: %v", err)
	}
	select {
	case <-r.Closing():
	default:
		t.Error("Closing not closed")
	}
	unstarted := NewRunner("svc", testBase(), RunnerOptions{})
	if err := unstarted.Close(nil); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
}

func TestRunner_BindFailureClosesTheOthers(t *testing.T) {
	first := NewRunner("a", testBase(), RunnerOptions{})
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer first.Close(nil)
	b := testBase()
	b.AdminAddr = first.AdminAddr() // taken
	second := NewRunner("b", b, RunnerOptions{})
	err := second.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listen admin") {
		t.Fatalf("got %v", err)
	}
}

func TestRunner_ClosingStopsReadinessAndHealth(t *testing.T) {
	r := NewRunner("svc", testBase(), RunnerOptions{})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + r.AdminAddr()
	inDrain := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- r.Close(func() error { close(inDrain); <-release; return nil })
	}()
	<-inDrain
	// While draining, the admin port still answers, and says not ready.
	if code, body := get(t, admin+"/readyz"); code != 503 || !strings.Contains(body, "closing") {
		t.Errorf("/readyz while closing = %d %q", code, body)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(admin + "/healthz"); err == nil {
		t.Error("admin still serving after Close")
	}
}

func TestBase_ValidateNamesEveryField(t *testing.T) {
	b := Base{GRPCAddr: "nope", AdminAddr: "x", LogLevel: "loud", LogFormat: "xml"}
	err := Invalid("svc", b.Validate())
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("not ErrInvalidConfig: %v", err)
	}
	for _, want := range []string{"svc config:", "node_name", "grpc_addr", "admin_addr", "max_message_bytes", "shutdown_timeout", "log_level", "log_format",
		"grpc_stream_window: 0 must be in 65536..2147483647 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	b = DefaultBase("127.0.0.1:1", "")
	b.Plaintext = true
	if err := Invalid("svc", b.Validate()); err != nil {
		t.Errorf("defaults with plaintext invalid: %v", err)
	}
	b = DefaultBase("127.0.0.1:1", "")
	b.TLSReloadInterval = 0
	err = Invalid("svc", b.Validate())
	for _, want := range []string{"tls_cert_file: is required", "tls_key_file: is required", "tls_ca_file: is required",
		"or set plaintext: true (local regions only)", "tls_reload_interval: must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("defaults without plaintext: error lacks %q: %v", want, err)
		}
	}
	b = DefaultBase("127.0.0.1:1", "")
	b.Plaintext = true
	b.GRPCConnWindow = b.GRPCStreamWindow - 1
	if err := Invalid("svc", b.Validate()); err == nil || !strings.Contains(err.Error(), "grpc_conn_window: 4194303 must be in grpc_stream_window (4194304)") {
		t.Errorf("a connection window under the stream window: %v", err)
	}
}

// testSvc is a minimal service on a Runner, as a service package writes one.
type testSvc struct{ r *Runner }

func (s *testSvc) Start(ctx context.Context) error { return s.r.Start(ctx) }
func (s *testSvc) Addr() string                    { return s.r.GRPCAddr() }
func (s *testSvc) Err() <-chan error               { return s.r.Err() }
func (s *testSvc) Close() error                    { return s.r.Close(nil) }

type testConfig struct {
	Base
	// Answer is what the service says.
	Answer int
}

func testCommand(started chan<- *testSvc) Command[testConfig] {
	docs := ConfigDocs()
	docs["testConfig.Answer"] = "Answer is what the service says."
	return Command[testConfig]{
		Name:   "test",
		Config: testConfig{Base: testBase(), Answer: 42},
		Docs:   docs,
		New: func(_ context.Context, cfg testConfig, log *slog.Logger) (Service, error) {
			if cfg.Answer < 0 {
				return nil, Invalid("test", []error{errors.New("answer: must not be negative")})
			}
			if err := checkAnswer(cfg); err != nil {
				return nil, err
			}
			s := &testSvc{r: NewRunner("test", cfg.Base, RunnerOptions{Logger: log})}
			if started != nil {
				started <- s
			}
			return s, nil
		},
		Check: checkAnswer,
	}
}

func checkAnswer(cfg testConfig) error {
	if cfg.Answer == 13 {
		return Invalid("test", []error{errors.New("answer: 13 is unlucky")})
	}
	return nil
}

func TestRun_ExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"--help"}, ExitOK, "Answer is what the service says."},
		{"help shows base docs", []string{"-h"}, ExitOK, "ShutdownTimeout is how long Close"},
		{"unknown flag", []string{"--nope"}, ExitUsage, "not defined"},
		{"bad value", []string{"--answer=x"}, ExitUsage, "answer (--answer)"},
		{"invalid base", []string{"--log-format=xml"}, ExitUsage, "log_format"},
		{"invalid service setting", []string{"--answer=-1"}, ExitUsage, "answer: must not be negative"},
		{"bind failure", []string{"--grpc-addr=256.0.0.1:1"}, ExitFailure, "listen grpc"},
		{"check valid, binds nothing", []string{"--check-config", "--grpc-addr=256.0.0.1:1"}, ExitOK, "mu-test: settings are valid"},
		{"check invalid base", []string{"--check-config", "--log-format=xml"}, ExitUsage, "log_format"},
		{"check the command's own", []string{"--check-config", "--answer=13"}, ExitUsage, "answer: 13 is unlucky"},
		{"check bad value", []string{"--check-config", "--answer=x"}, ExitUsage, "answer (--answer)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Run(context.Background(), testCommand(nil), tc.args, &out)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, want %d; output lacks %q?\n%s", code, tc.code, tc.want, out.String())
			}
		})
	}
}

func TestRun_SignalClosesAndExitsZero(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *testSvc, 1)
	var out bytes.Buffer
	done := make(chan int)
	go func() { done <- Run(ctx, testCommand(started), []string{"--log-format=json"}, &out) }()
	s := <-started
	deadline := time.Now().Add(10 * time.Second)
	for s.r.AdminAddr() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if code, _ := get(t, "http://"+s.r.AdminAddr()+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), `"msg":"test closed"`) {
		t.Errorf("log lacks the close line:\n%s", out.String())
	}
}
