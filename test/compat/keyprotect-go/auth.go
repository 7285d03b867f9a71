package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	kp "github.com/IBM/keyprotect-go-client"
)

// mtlsTransport trusts caFile and presents the client certificate: keygate requires it on every
// connection, and binds each access token to it.
func mtlsTransport(caFile, certFile, keyFile string) (*http.Transport, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		},
	}, nil
}

// CertTokenSource is the supported way to use keyprotect-go-client with keygate (docs/api.md).
// The library's own iam.IAMTokenSource always asks for tokens over Go's http.DefaultTransport,
// never over the transport given to kp.New, so it cannot present the client certificate that
// keygate binds the token to. The library's documented alternative is to bring your own token
// (kp.NewContextWithAuth): this source fetches it from the gateway's /identity/token over the
// client-certificate transport, caches it, and renews it 60 s before it expires, exactly as the
// library's IAMTokenSource does (so tokens.lifetime must be well above one minute).
type CertTokenSource struct {
	TokenURL string
	APIKey   string
	Client   *http.Client

	mu      sync.Mutex
	token   string
	renewAt time.Time
	// Fetched counts the tokens fetched so far (a test reads it).
	Fetched int
}

// iamToken is IAM's token answer (keygate answers the same shape).
type iamToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Expiration  int64  `json:"expiration"`
}

// Authorization returns "Bearer <token>", fetching a new token when the cached one is due.
func (s *CertTokenSource) Authorization(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.renewAt) {
		return s.token, nil
	}
	t, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.Fetched++
	s.token = "Bearer " + t.AccessToken
	s.renewAt = time.Now().Add(time.Duration(t.ExpiresIn-60) * time.Second)
	return s.token, nil
}

// WithAuth returns ctx carrying a current token, for any kp.Client call.
func (s *CertTokenSource) WithAuth(ctx context.Context) (context.Context, error) {
	auth, err := s.Authorization(ctx)
	if err != nil {
		return nil, err
	}
	return kp.NewContextWithAuth(ctx, auth), nil
}

func (s *CertTokenSource) fetch(ctx context.Context) (*iamToken, error) {
	form := url.Values{}
	form.Set("grant_type", "urn:ibm:params:oauth:grant-type:apikey")
	form.Set("apikey", s.APIKey)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token request: HTTP %d: %s", res.StatusCode, body)
	}
	var t iamToken
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("token answer: %w", err)
	}
	if t.AccessToken == "" || t.TokenType != "Bearer" {
		return nil, fmt.Errorf("token answer without a Bearer access_token")
	}
	return &t, nil
}
