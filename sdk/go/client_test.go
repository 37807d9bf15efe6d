package flk

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type reply struct {
	status  int
	body    string
	headers map[string]string
	delay   time.Duration
}

type recorder struct {
	mu   sync.Mutex
	reqs []map[string]any
	raws []string
	hdrs []http.Header
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func scripted(t *testing.T, replies ...reply) (*httptest.Server, *recorder) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, body)
		rec.raws = append(rec.raws, string(raw))
		rec.hdrs = append(rec.hdrs, r.Header.Clone())
		n := len(rec.reqs)
		rec.mu.Unlock()
		rp := replies[len(replies)-1]
		if n <= len(replies) {
			rp = replies[n-1]
		}
		time.Sleep(rp.delay)
		for k, v := range rp.headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		_, _ = io.WriteString(w, rp.body)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

const decision = `{"accepted":true,"escalated":false,"reason":"","recomputed_D_hat":0.857,"recomputed_budget":0.2}`

func samplePCS(t *testing.T) *PCS {
	r := 0.87
	p, err := BuildPCS(BuildInput{ShardID: "shard-go", Epoch: 3, Events: [][]byte{[]byte("a"), []byte("b")},
		NJ: map[string]int64{"2": 3, "4": 5, "8": 9, "16": 17, "32": 31}, CohStar: 0.73, VStar: []float64{0.6, 0.8}, Seed: 42, R: &r})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testClient(url string, sleeps *[]time.Duration) *Client {
	c := NewClient(url, "acme", "test-secret", "hmac")
	c.Sleep = func(_ context.Context, d time.Duration) error { *sleeps = append(*sleeps, d); return nil }
	return c
}

func TestSubmitAcceptedSignsAndSendsTenant(t *testing.T) {
	srv, rec := scripted(t, reply{status: 200, body: decision})
	var sleeps []time.Duration
	res, err := testClient(srv.URL, &sleeps).SubmitPCS(context.Background(), samplePCS(t))
	if err != nil || res.Status != 200 || !res.Accepted || res.Replayed || res.RecomputedDHat != 0.857 || res.Attempts != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if rec.hdrs[0].Get("X-Tenant-Id") != "acme" {
		t.Fatal("no tenant header")
	}
	raw, _ := json.Marshal(rec.reqs[0])
	var sent PCS
	_ = json.Unmarshal(raw, &sent)
	digest, _ := PayloadDigest(&sent)
	if ok, _ := VerifySignature(AlgHMAC, []byte("test-secret"), digest, sent.Sig); !ok {
		t.Fatal("the signature does not verify")
	}
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	srv, rec := scripted(t,
		reply{status: 503, body: `{"error":"store_unavailable"}`, headers: map[string]string{"Retry-After": "2"}},
		reply{status: 429, body: `{"error":"rate_limited"}`, headers: map[string]string{"Retry-After": "1"}},
		reply{status: 409, body: `{"error":"in_flight"}`},
		reply{status: 202, body: `{"accepted":false,"escalated":true,"reason":"budget_mismatch"}`, headers: map[string]string{"Idempotent-Replayed": "true"}},
	)
	var sleeps []time.Duration
	var infos []RetryInfo
	c := testClient(srv.URL, &sleeps)
	c.Rand = func() float64 { return 0.999 }
	c.BaseDelay = 100 * time.Millisecond
	c.OnRetry = func(i RetryInfo) { infos = append(infos, i) }
	res, err := c.SubmitPCS(context.Background(), samplePCS(t))
	if err != nil || res.Status != 202 || !res.Escalated || !res.Replayed || res.Attempts != 4 || res.Reason != "budget_mismatch" {
		t.Fatalf("%+v %v", res, err)
	}
	if sleeps[0] < 2*time.Second || sleeps[1] < time.Second || sleeps[2] >= 400*time.Millisecond {
		t.Fatalf("sleeps %v", sleeps)
	}
	if infos[0].Code != "store_unavailable" || infos[1].Status != 429 || infos[1].RetryAfter != time.Second {
		t.Fatalf("%+v", infos)
	}
	sigs := map[any]bool{}
	for i, r := range rec.reqs {
		if r["attempt"] != float64(i+1) {
			t.Fatalf("attempt %v", r["attempt"])
		}
		sigs[r["sig"]] = true
	}
	if len(sigs) != 1 {
		t.Fatal("the signature changed between retries")
	}
}

func TestFullJitter(t *testing.T) {
	srv, _ := scripted(t, reply{status: 500, body: `{"error":"boom"}`})
	var sleeps []time.Duration
	c := testClient(srv.URL, &sleeps)
	c.Rand = func() float64 { return 0.5 }
	c.BaseDelay, c.MaxDelay, c.MaxRetries = 100*time.Millisecond, 500*time.Millisecond, 5
	_, err := c.SubmitPCS(context.Background(), samplePCS(t))
	if !errors.Is(err, ErrServer) {
		t.Fatalf("%v", err)
	}
	want := []time.Duration{50, 100, 200, 250, 250}
	for i := range want {
		if sleeps[i] != want[i]*time.Millisecond {
			t.Fatalf("sleeps %v", sleeps)
		}
	}
}

func TestPermanentRefusalsAreTypedAndNotRetried(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		kind   error
	}{
		{401, `{"error":"invalid_signature"}`, ErrSignature},
		{400, `{"error":"schema_violation","field":"v_star"}`, ErrValidation},
		{413, `{"error":"payload_too_large"}`, ErrValidation},
		{422, `{"error":"pcs_id_conflict","fields":["seed"]}`, ErrConflict},
	} {
		srv, rec := scripted(t, reply{status: c.status, body: c.body})
		var sleeps []time.Duration
		_, err := testClient(srv.URL, &sleeps).SubmitPCS(context.Background(), samplePCS(t))
		var e *Error
		if !errors.Is(err, c.kind) || !errors.As(err, &e) || e.Status != c.status || len(rec.reqs) != 1 || len(sleeps) != 0 {
			t.Fatalf("%d: %v (%d requests)", c.status, err, len(rec.reqs))
		}
		if c.status == 422 && (len(e.Fields) != 1 || e.Fields[0] != "seed") {
			t.Fatalf("fields %v", e.Fields)
		}
		if c.status == 400 && e.Field != "v_star" {
			t.Fatalf("field %q", e.Field)
		}
	}
}

func TestRateLimitAndNetworkErrors(t *testing.T) {
	srv, rec := scripted(t, reply{status: 429, body: `{"error":"rate_limited"}`, headers: map[string]string{"Retry-After": "1"}})
	var sleeps []time.Duration
	c := testClient(srv.URL, &sleeps)
	c.MaxRetries = 2
	_, err := c.SubmitPCS(context.Background(), samplePCS(t))
	var e *Error
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &e) || e.Attempts != 3 || e.RetryAfter != time.Second || len(rec.reqs) != 3 {
		t.Fatalf("%v", err)
	}
	quota, rec2 := scripted(t, reply{status: 429, body: `{"error":"quota_exceeded"}`, headers: map[string]string{"Retry-After": "3600"}})
	_, err = testClient(quota.URL, &sleeps).SubmitPCS(context.Background(), samplePCS(t))
	if !errors.Is(err, ErrRateLimited) || len(rec2.reqs) != 1 {
		t.Fatalf("a Retry-After beyond MaxRetryAfter was waited for: %v", err)
	}
	slow, rec3 := scripted(t, reply{status: 200, body: decision, delay: 300 * time.Millisecond})
	c = testClient(slow.URL, &sleeps)
	c.Timeout, c.MaxRetries = 50*time.Millisecond, 1
	_, err = c.SubmitPCS(context.Background(), samplePCS(t))
	if !errors.Is(err, ErrNetwork) || !errors.As(err, &e) || e.Code != "timeout" || rec3.count() != 2 {
		t.Fatalf("%v", err)
	}
	refused := testClient("http://127.0.0.1:1", &sleeps)
	refused.MaxRetries = 0
	if _, err = refused.SubmitPCS(context.Background(), samplePCS(t)); !errors.Is(err, ErrNetwork) {
		t.Fatalf("%v", err)
	}
	bad, _ := scripted(t, reply{status: 502, body: "<html>bad gateway</html>"})
	c = testClient(bad.URL, &sleeps)
	c.MaxRetries = 0
	if _, err = c.SubmitPCS(context.Background(), samplePCS(t)); !errors.Is(err, ErrServer) || !errors.As(err, &e) || e.Code != "non_json_response" {
		t.Fatalf("%v", err)
	}
}

func TestEd25519ClientAndBadKey(t *testing.T) {
	srv, rec := scripted(t, reply{status: 200, body: decision})
	seed := "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	c := NewClient(srv.URL, "", seed, "ed25519").WithKeyID("k1")
	if _, err := c.SubmitPCS(context.Background(), samplePCS(t)); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(rec.reqs[0])
	var sent PCS
	_ = json.Unmarshal(raw, &sent)
	pub, _ := hex.DecodeString("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
	digest, _ := PayloadDigest(&sent)
	if ok, _ := VerifySignature(AlgEd25519, pub, digest, sent.Sig); !ok || sent.KeyID != "k1" {
		t.Fatal("the Ed25519 signature does not verify")
	}
	if _, err := NewClient(srv.URL, "", "not hex", "ed25519").SubmitPCS(context.Background(), samplePCS(t)); !errors.Is(err, ErrInvalidPCS) {
		t.Fatalf("%v", err)
	}
}

// Failover between endpoints (regions): a closed port and a scripted server answering 503 stand in
// for failing regions (they are not FLK).

var unavailable = reply{status: 503, body: `{"error":"store_unavailable","detail":"the database is unavailable"}`,
	headers: map[string]string{"Retry-After": "5"}}

// closedURL is the URL of a port nothing listens on (a server started, then closed): refused.
func closedURL() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func TestParseEndpoints(t *testing.T) {
	got, err := ParseEndpoints("http://a:1/, https://b:2", "http://c:3")
	if err != nil || strings.Join(got, " ") != "http://a:1 https://b:2 http://c:3" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range [][]string{{" , "}, {}, {"http://a:1,ftp://b"}} {
		if _, err := ParseEndpoints(bad...); !errors.Is(err, ErrInvalidPCS) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	c := NewClient("http://a:1/,http://b:2", "", "", "")
	if c.Endpoint() != "http://a:1" || c.BaseURL != "http://a:1,http://b:2" {
		t.Fatalf("%q %q", c.Endpoint(), c.BaseURL)
	}
	c = NewClient("http://a:1", "", "", "").WithEndpoints("http://x:1", "http://y:2")
	if c.Endpoint() != "http://x:1" || len(c.Endpoints) != 2 {
		t.Fatalf("%q %v", c.Endpoint(), c.Endpoints)
	}
	if _, err := NewClient("http://a:1", "", "k", "hmac").WithEndpoints("").SubmitPCS(context.Background(), samplePCS(t)); !errors.Is(err, ErrInvalidPCS) {
		t.Fatalf("%v", err)
	}
}

func TestRefusedConnectionMovesToTheNextEndpointAndStays(t *testing.T) {
	live, rec := scripted(t, reply{status: 200, body: decision})
	var sleeps []time.Duration
	c := testClient(closedURL()+","+live.URL, &sleeps)
	for epoch := 1; epoch <= 2; epoch++ {
		p := samplePCS(t)
		p.Epoch = uint64(epoch)
		p.PcsID = ""
		if res, err := c.SubmitPCS(context.Background(), p); err != nil || res.Status != 200 || res.Attempts != 1 {
			t.Fatalf("%+v %v", res, err)
		}
	}
	if rec.count() != 2 || c.Endpoint() != live.URL || c.Failovers() != 1 || len(sleeps) != 0 {
		t.Fatalf("%d requests, endpoint %q, %d failovers, sleeps %v", rec.count(), c.Endpoint(), c.Failovers(), sleeps)
	}
}

func TestA503MovesToTheNextEndpointWithTheSameBytesBeforeAnyBackoff(t *testing.T) {
	down, downRec := scripted(t, unavailable)
	live, liveRec := scripted(t, reply{status: 200, body: decision})
	var sleeps []time.Duration
	c := testClient("http://unused", &sleeps).WithEndpoints(down.URL, live.URL)
	res, err := c.SubmitPCS(context.Background(), samplePCS(t))
	if err != nil || res.Status != 200 || res.Attempts != 1 || len(sleeps) != 0 {
		t.Fatalf("%+v %v (sleeps %v)", res, err, sleeps)
	}
	if downRec.count() != 1 || liveRec.count() != 1 || downRec.raws[0] != liveRec.raws[0] {
		t.Fatalf("not resent byte for byte:\n%s\n%s", downRec.raws, liveRec.raws)
	}
	if c.Endpoint() != live.URL {
		t.Fatalf("endpoint %q", c.Endpoint())
	}
}

func TestEveryEndpointFailingGoesToTheBackoffWithTheLastFailure(t *testing.T) {
	down, rec := scripted(t, unavailable)
	dead := closedURL()
	var sleeps []time.Duration
	var infos []RetryInfo
	c := testClient(dead+","+down.URL, &sleeps)
	c.MaxRetries = 1
	c.OnRetry = func(i RetryInfo) { infos = append(infos, i) }
	_, err := c.SubmitPCS(context.Background(), samplePCS(t))
	var e *Error
	if !errors.Is(err, ErrServer) || !errors.As(err, &e) || e.Status != 503 || e.RetryAfter != 5*time.Second || e.Attempts != 2 {
		t.Fatalf("%v", err)
	}
	if len(infos) != 1 || infos[0].Status != 503 || len(sleeps) != 1 || sleeps[0] < 5*time.Second {
		t.Fatalf("%+v %v", infos, sleeps)
	}
	if rec.count() != 2 || c.Failovers() != 4 || rec.reqs[0]["attempt"] != 1.0 || rec.reqs[1]["attempt"] != 2.0 {
		t.Fatalf("%d requests, %d failovers", rec.count(), c.Failovers())
	}
	// The last one tried refused: the network error is the one the backoff sees.
	c = testClient(down.URL+","+dead, &sleeps)
	c.MaxRetries = 0
	if _, err = c.SubmitPCS(context.Background(), samplePCS(t)); !errors.Is(err, ErrNetwork) {
		t.Fatalf("%v", err)
	}
	// One endpoint: a 503 goes straight to the backoff, as before.
	c = testClient(down.URL, &sleeps)
	c.MaxRetries = 1
	before := rec.count()
	if _, err = c.SubmitPCS(context.Background(), samplePCS(t)); !errors.Is(err, ErrServer) || rec.count()-before != 2 || c.Failovers() != 0 {
		t.Fatalf("%v, %d requests, %d failovers", err, rec.count()-before, c.Failovers())
	}
}

func TestSubmissionsInFlightTogetherEachTryEveryEndpointOnce(t *testing.T) {
	live, rec := scripted(t, reply{status: 200, body: decision})
	var sleeps []time.Duration
	c := testClient(closedURL()+","+live.URL, &sleeps)
	c.MaxRetries = 0 // a failure would be returned, not retried
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.SubmitPCS(context.Background(), samplePCS(t))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if rec.count() != 8 || c.Endpoint() != live.URL {
		t.Fatalf("%d requests, endpoint %q", rec.count(), c.Endpoint())
	}
}
