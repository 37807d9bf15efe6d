package flk

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// SubmitPath is the ingest endpoint.
const SubmitPath = "/v1/pcs/submit"

// Error kinds: test with errors.Is(err, flk.ErrRateLimited); errors.As(err, &*flk.Error) gives the details.
var (
	ErrValidation  = errors.New("flk: validation error")  // 400, 413: do not resend unchanged
	ErrSignature   = errors.New("flk: signature refused") // 401: never retried
	ErrConflict    = errors.New("flk: conflict")          // 422, or 409 after the retries
	ErrRateLimited = errors.New("flk: rate limited")      // 429 after the retries
	ErrServer      = errors.New("flk: server error")      // 5xx or a non-JSON answer after the retries
	ErrNetwork     = errors.New("flk: network error")     // no answer (refused, reset, timeout) after the retries
)

// Error is a refused or failed submission.
type Error struct {
	Kind       error // one of the Err* kinds above
	Status     int   // HTTP status of the last answer; 0 when none came
	Code       string
	Detail     string
	Field      string   // 400: the field at fault
	Fields     []string // 422: the fields that differ
	RetryAfter time.Duration
	Attempts   int
	Body       map[string]any
	Err        error // the transport error, for ErrNetwork
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%v after %d attempt(s): %v", e.Kind, e.Attempts, e.Err)
	}
	msg := fmt.Sprintf("FLK answered %d %s", e.Status, e.Code)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap gives the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// SubmitResult is a decided PCS: 200 (accepted) or 202 (escalated for review).
type SubmitResult struct {
	Status           int
	Accepted         bool
	Escalated        bool
	Reason           string
	RecomputedDHat   float64
	RecomputedBudget float64
	Replayed         bool // Idempotent-Replayed: the stored answer of an earlier submission
	Attempts         int
	PcsID            string
	Body             map[string]any
}

// RetryInfo tells OnRetry why a request is retried and after how long.
type RetryInfo struct {
	Attempt    int // the request that failed (1 = the first)
	Status     int // 0 for a network error or timeout
	Code       string
	RetryAfter time.Duration
	Delay      time.Duration // at least RetryAfter
}

// Client submits PCS to FLK, failing over between several endpoints (regions). Configure the exported
// fields before the first use; SubmitPCS may then be called from several goroutines.
//
// Each try goes to the current endpoint; no answer (connection refused or reset, DNS, Timeout) or a 503
// moves it to the next, which is sent the same bytes, each endpoint at most once per try; the endpoint
// that answered stays current. Only when every endpoint failed does the retry logic see the failure
// (the last 503 with its Retry-After, or the last network error) and back off before the next try.
// Resending to another region is safe: each deduplicates on pcs_id and replicates its decisions to
// the others (docs/regions.md).
type Client struct {
	// BaseURL is the server, e.g. http://127.0.0.1:8000, or several comma-separated
	// ("https://eu.example,https://us.example"); used when Endpoints is empty.
	BaseURL string
	// Endpoints, when not empty, are the servers (regions) in the order they are tried, instead of
	// BaseURL. WithEndpoints sets them.
	Endpoints []string
	TenantID  string
	Signer    Signer
	// HTTPClient does the requests (http.DefaultClient's transport; Timeout applies per request).
	HTTPClient *http.Client
	// Timeout of one request (default 10 s).
	Timeout time.Duration
	// MaxRetries after the first request (default 5).
	MaxRetries int
	// BaseDelay and MaxDelay shape the backoff: retry n waits a uniform random time in
	// [0, min(MaxDelay, BaseDelay·2^(n−1))) (full jitter), and at least the server's Retry-After.
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter: a longer Retry-After (a daily quota, say) is not waited for (default 60 s).
	MaxRetryAfter time.Duration
	UserAgent     string
	// OnRetry is called before each wait.
	OnRetry func(RetryInfo)
	// Sleep and Rand are injection points for tests.
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64

	configErr error
	current   atomic.Int64 // index of the endpoint that answered last
	failovers atomic.Int64
}

// ParseEndpoints returns the base URLs in urls, each one URL or several comma-separated (blanks
// dropped, trailing slashes removed); an error wrapping ErrInvalidPCS when there is none or one is not
// an http:// or https:// URL.
func ParseEndpoints(urls ...string) ([]string, error) {
	var endpoints []string
	for _, part := range urls {
		for _, item := range strings.Split(part, ",") {
			endpoint := strings.TrimRight(strings.TrimSpace(item), "/")
			if endpoint == "" {
				continue
			}
			if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
				return nil, fmt.Errorf("%w: baseURL must be an http:// or https:// URL: %q", ErrInvalidPCS, endpoint)
			}
			endpoints = append(endpoints, endpoint)
		}
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: baseURL must be an http:// or https:// URL", ErrInvalidPCS)
	}
	return endpoints, nil
}

// WithEndpoints sets the endpoints (regions) to fail over between, each argument one URL or several
// comma-separated; invalid ones make every SubmitPCS fail with ErrInvalidPCS, as NewClient does.
func (c *Client) WithEndpoints(urls ...string) *Client {
	endpoints, err := ParseEndpoints(urls...)
	if err != nil {
		c.configErr = err
		return c
	}
	c.Endpoints = endpoints
	return c
}

// endpoints are Endpoints, or else BaseURL's comma-separated URLs.
func (c *Client) endpoints() []string {
	if len(c.Endpoints) > 0 {
		return c.Endpoints
	}
	var endpoints []string
	for _, item := range strings.Split(c.BaseURL, ",") {
		if endpoint := strings.TrimRight(strings.TrimSpace(item), "/"); endpoint != "" {
			endpoints = append(endpoints, endpoint)
		}
	}
	return endpoints
}

// Endpoint is the base URL requests go to now (the one that answered last).
func (c *Client) Endpoint() string {
	endpoints := c.endpoints()
	if len(endpoints) == 0 {
		return ""
	}
	return endpoints[int(c.current.Load())%len(endpoints)]
}

// Failovers is how many times a request moved to another endpoint, over the client's life.
func (c *Client) Failovers() int64 { return c.failovers.Load() }

// NewClient returns a client for baseURL, one URL or several comma-separated (regions, see Client);
// tenantID is sent as X-Tenant-Id (ignored by a single-tenant
// server); signingKey is the HMAC secret text or the Ed25519 seed's 64 hex digits; alg is "hmac" or
// "ed25519". A key that does not parse makes every SubmitPCS fail with ErrInvalidPCS; NewClientE
// reports it at once.
func NewClient(baseURL, tenantID, signingKey, alg string) *Client {
	c, err := NewClientE(baseURL, tenantID, signingKey, alg)
	if err != nil {
		c.configErr = err
	}
	return c
}

// NewClientE is NewClient that reports a bad URL or key at once.
func NewClientE(baseURL, tenantID, signingKey, alg string) (*Client, error) {
	c := &Client{
		BaseURL:       strings.TrimRight(strings.TrimSpace(baseURL), "/"),
		TenantID:      tenantID,
		HTTPClient:    &http.Client{},
		Timeout:       10 * time.Second,
		MaxRetries:    5,
		BaseDelay:     250 * time.Millisecond,
		MaxDelay:      30 * time.Second,
		MaxRetryAfter: 60 * time.Second,
		UserAgent:     "flk-sdk-go/0.1",
	}
	endpoints, err := ParseEndpoints(baseURL)
	if err != nil {
		return c, err
	}
	c.BaseURL = strings.Join(endpoints, ",")
	if signingKey != "" {
		s, err := NewSigner(alg, signingKey, "")
		if err != nil {
			return c, err
		}
		c.Signer = s
	}
	return c, nil
}

// WithKeyID sets the key_id the client's signer sends (which of the tenant's keys signs).
func (c *Client) WithKeyID(keyID string) *Client {
	switch s := c.Signer.(type) {
	case *HMACSigner:
		s.keyID = keyID
	case *Ed25519Signer:
		s.keyID = keyID
	}
	return c
}

// SignPCS signs a PCS with the client's key in place (and fills a missing pcs_id).
func (c *Client) SignPCS(p *PCS) error {
	if c.configErr != nil {
		return c.configErr
	}
	if c.Signer == nil {
		return fmt.Errorf("%w: this client has no signing key", ErrInvalidPCS)
	}
	if p.PcsID == "" {
		id, err := ComputePcsID(p.MerkleRoot, p.Epoch, p.ShardID)
		if err != nil {
			return err
		}
		p.PcsID = id
	}
	return SignPCS(p, c.Signer)
}

var retryable = map[int]bool{408: true, 409: true, 425: true, 429: true, 500: true, 502: true, 503: true, 504: true}

// SubmitPCS submits one PCS. A PCS without Sig is signed with the client's key first (one that carries
// a Sig is sent as it is); Attempt and SentAt are set afresh on every request; pcs itself is not
// modified. It returns the decision (200, 202; replayed or not) or an *Error: ErrValidation (400, 413),
// ErrSignature (401), ErrConflict (422, or 409 after the retries), ErrRateLimited (429), ErrServer
// (5xx), ErrNetwork; or the context's error when ctx ends first.
func (c *Client) SubmitPCS(ctx context.Context, pcs *PCS) (*SubmitResult, error) {
	if c.configErr != nil {
		return nil, c.configErr
	}
	p := *pcs
	if p.FT != nil && p.FT.Fallbacks == nil {
		ft := *p.FT
		ft.Fallbacks = []string{}
		p.FT = &ft
	}
	if p.Sig == "" {
		if err := c.SignPCS(&p); err != nil {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		p.Attempt = attempt
		p.SentAt = UTCNowRFC3339()
		body, err := json.Marshal(&p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPCS, err)
		}
		result, failure := c.try(ctx, body, attempt)
		if failure == nil {
			result.PcsID = p.PcsID
			return result, nil
		}
		var apiErr *Error
		if !errors.As(failure, &apiErr) {
			return nil, failure // the context ended
		}
		if !(apiErr.Status == 0 || retryable[apiErr.Status]) || attempt > c.MaxRetries {
			return nil, failure
		}
		if apiErr.RetryAfter > c.MaxRetryAfter {
			return nil, failure
		}
		ceiling := float64(c.BaseDelay) * math.Pow(2, float64(attempt-1))
		if ceiling > float64(c.MaxDelay) {
			ceiling = float64(c.MaxDelay)
		}
		delay := time.Duration(c.random() * ceiling)
		if delay < apiErr.RetryAfter {
			delay = apiErr.RetryAfter
		}
		if c.OnRetry != nil {
			c.OnRetry(RetryInfo{Attempt: attempt, Status: apiErr.Status, Code: apiErr.Code, RetryAfter: apiErr.RetryAfter, Delay: delay})
		}
		if err := c.sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// try sends one try's body to the current endpoint, then to the next ones on no answer or a 503
// (see Client); it returns the answer of the endpoint that answered, or the last failure.
func (c *Client) try(ctx context.Context, body []byte, attempt int) (*SubmitResult, error) {
	endpoints := c.endpoints()
	count := len(endpoints)
	if count == 0 {
		return nil, fmt.Errorf("%w: no endpoint (BaseURL and Endpoints are empty)", ErrInvalidPCS)
	}
	// From where this try started, not from current as other goroutines move it: each endpoint is
	// tried once per try whatever they do.
	start := int(c.current.Load()) % count
	var failure error
	for tried := 0; tried < count; tried++ {
		index := (start + tried) % count
		result, err := c.post(ctx, endpoints[index], body, attempt)
		var apiErr *Error
		if err != nil && !errors.As(err, &apiErr) {
			return nil, err // the context ended, or the request could not be built
		}
		if err == nil || count == 1 || (apiErr.Status != 0 && apiErr.Status != 503) {
			c.current.Store(int64(index))
			return result, err
		}
		failure = err
		c.failovers.Add(1)
	}
	return nil, failure
}

func (c *Client) post(ctx context.Context, endpoint string, body []byte, attempt int) (*SubmitResult, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, endpoint+SubmitPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPCS, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
	if c.TenantID != "" {
		req.Header.Set("X-Tenant-Id", c.TenantID)
	}
	httpClient := c.HTTPClient
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	resp, err := httpClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var raw []byte
		raw, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err == nil {
			return c.answer(resp, raw, attempt)
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	code := "network_error"
	if errors.Is(err, context.DeadlineExceeded) {
		code = "timeout"
	}
	return nil, &Error{Kind: ErrNetwork, Code: code, Attempts: attempt, Err: err}
}

func (c *Client) answer(resp *http.Response, raw []byte, attempt int) (*SubmitResult, error) {
	var body map[string]any
	if json.Unmarshal(raw, &body) != nil || body == nil {
		text := string(raw)
		if len(text) > 200 {
			text = text[:200]
		}
		body = map[string]any{"error": "non_json_response", "detail": text}
	}
	str := func(k string) string { s, _ := body[k].(string); return s }
	num := func(k string) float64 { f, _ := body[k].(float64); return f }
	if (resp.StatusCode == 200 || resp.StatusCode == 202) && body["error"] == nil {
		accepted, _ := body["accepted"].(bool)
		escalated, _ := body["escalated"].(bool)
		return &SubmitResult{
			Status: resp.StatusCode, Accepted: accepted, Escalated: escalated, Reason: str("reason"),
			RecomputedDHat: num("recomputed_D_hat"), RecomputedBudget: num("recomputed_budget"),
			Replayed: resp.Header.Get("Idempotent-Replayed") == "true", Attempts: attempt, Body: body,
		}, nil
	}
	e := &Error{Status: resp.StatusCode, Code: str("error"), Detail: str("detail"), Field: str("field"),
		Attempts: attempt, Body: body, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	}
	if fields, ok := body["fields"].([]any); ok {
		for _, f := range fields {
			if s, ok := f.(string); ok {
				e.Fields = append(e.Fields, s)
			}
		}
	}
	switch s := resp.StatusCode; {
	case s == 401:
		e.Kind = ErrSignature
	case s == 409 || s == 422:
		e.Kind = ErrConflict
	case s == 429:
		e.Kind = ErrRateLimited
	case s == 400 || s == 413:
		e.Kind = ErrValidation
	default:
		e.Kind = ErrServer
	}
	return nil, e
}

// parseRetryAfter reads a Retry-After in seconds (an HTTP-date, which FLK never sends, gives 0).
func parseRetryAfter(v string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func (c *Client) random() float64 {
	if c.Rand != nil {
		return c.Rand()
	}
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Health is true when GET /healthz of the current endpoint answers 200 (no failover).
func (c *Client) Health(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Endpoint()+"/healthz", nil)
	if err != nil {
		return false
	}
	httpClient := c.HTTPClient
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == 200
}
