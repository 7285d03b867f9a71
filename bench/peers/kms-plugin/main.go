// Command kms-plugin is keygate's benchmark peer: a Kubernetes KMS v2 plugin on k8s.io/kms that
// does what the upstream mock plugin (k8s.io/kms/internal/plugins/_mock) does, one AES-256-GCM
// encrypt or decrypt in the HSM per request through crypto11, so the bench can measure keygate's
// shim against a Go plugin of that design on the same machine (docs/benchmarks.md, K1).
//
// Not a product: no key rotation, no metrics, no health endpoint.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ThalesGroup/crypto11"
	"k8s.io/kms/pkg/service"
)

type config struct {
	socket   string
	module   string
	token    string
	pinFile  string
	keyLabel string
	keyID    string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.socket, "listen-addr", env("PEER_SOCKET", "/tmp/kms-peer.sock"), "UNIX socket path (PEER_SOCKET)")
	flag.StringVar(&c.module, "module", env("PEER_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so"), "PKCS#11 module (PEER_PKCS11_MODULE)")
	flag.StringVar(&c.token, "token-label", env("PEER_TOKEN_LABEL", "keygate-peer"), "token label (PEER_TOKEN_LABEL)")
	flag.StringVar(&c.pinFile, "pin-file", env("PEER_PIN_FILE", ""), "file holding the user PIN (PEER_PIN_FILE)")
	flag.StringVar(&c.keyLabel, "key-label", env("PEER_KEY_LABEL", "kms-peer-key"), "label of the AES key (PEER_KEY_LABEL)")
	flag.StringVar(&c.keyID, "key-id", env("PEER_KEY_ID", ""), "key_id answered by Status and Encrypt (default: the key label)")
	flag.Parse()
	if c.keyID == "" {
		c.keyID = c.keyLabel
	}
	return c
}

// plugin implements service.Service: the nonce is random and prepended to the sealed data.
type plugin struct {
	keyID string
	gcm   interface {
		NonceSize() int
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

var _ service.Service = (*plugin)(nil)

func (p *plugin) Encrypt(_ context.Context, _ string, data []byte) (res *service.EncryptResponse, err error) {
	nonce := make([]byte, p.gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	// crypto11's Seal panics on an HSM error (cipher.AEAD has no error return).
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("encrypt: %v", r)
		}
	}()
	sealed := p.gcm.Seal(nonce, nonce, data, nil)
	return &service.EncryptResponse{Ciphertext: sealed, KeyID: p.keyID}, nil
}

func (p *plugin) Decrypt(_ context.Context, _ string, req *service.DecryptRequest) ([]byte, error) {
	if req.KeyID != p.keyID {
		return nil, fmt.Errorf("unknown key_id %q", req.KeyID)
	}
	n := p.gcm.NonceSize()
	if len(req.Ciphertext) < n {
		return nil, errors.New("ciphertext too short")
	}
	return p.gcm.Open(nil, req.Ciphertext[:n], req.Ciphertext[n:], nil)
}

func (p *plugin) Status(_ context.Context) (*service.StatusResponse, error) {
	return &service.StatusResponse{Version: "v2", Healthz: "ok", KeyID: p.keyID}, nil
}

func stamp(msg string, start time.Time) {
	// One JSON line per step, like the shim's log, so the bench reads both the same way.
	fmt.Printf("{\"time\":%d,\"msg\":%q,\"sinceStartMs\":%.1f}\n", time.Now().UnixMilli(), msg, float64(time.Since(start).Microseconds())/1000)
}

func main() {
	start := time.Now()
	c := parseFlags()
	pin := ""
	if c.pinFile != "" {
		b, err := os.ReadFile(c.pinFile)
		if err != nil {
			log.Fatalf("pin file: %v", err)
		}
		pin = strings.TrimSpace(string(b))
	}
	ctx, err := crypto11.Configure(&crypto11.Config{Path: c.module, TokenLabel: c.token, Pin: pin})
	if err != nil {
		log.Fatalf("pkcs11: %v", err)
	}
	defer ctx.Close()
	key, err := ctx.FindKey(nil, []byte(c.keyLabel))
	if err != nil || key == nil {
		log.Fatalf("key %q not found: %v", c.keyLabel, err)
	}
	gcm, err := key.NewGCM()
	if err != nil {
		log.Fatalf("gcm: %v", err)
	}
	stamp("hsm ready", start)
	_ = os.Remove(c.socket)
	svc := service.NewGRPCService(c.socket, 30*time.Second, &plugin{keyID: c.keyID, gcm: gcm})
	done := make(chan error, 1)
	go func() { done <- svc.ListenAndServe() }()
	go func() {
		// ListenAndServe has no ready callback: the socket file appears once it listens.
		for {
			if _, err := os.Stat(c.socket); err == nil {
				stamp("kms peer listening", start)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		svc.Shutdown()
	case err := <-done:
		if err != nil {
			log.Fatalf("serve: %v", err)
		}
	}
}
