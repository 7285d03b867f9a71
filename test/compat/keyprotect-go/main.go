// Command keyprotect-go drives IBM's Key Protect Go client (github.com/IBM/keyprotect-go-client)
// against a running keygate gateway, compares every answer with what Key Protect answers for root
// keys used as KEKs, and prints one line per case: "ok <case>" or "MISMATCH <case>: <what>".
// It exits 1 when any case differs, 2 on bad arguments. Run by test/compat/keyprotect-go.test.ts.
//
// Usage: keyprotect-go -url https://127.0.0.1:8443 -instance ID -ca ca.pem -cert client.pem
//
//	-key client-key.pem -api-key-file FILE [-other-instance ID]
//
// Every flag may also come from the environment: KEYGATE_URL, KEYGATE_INSTANCE, KEYGATE_CA_FILE,
// KEYGATE_CERT_FILE, KEYGATE_KEY_FILE, KEYGATE_API_KEY (the key itself) or KEYGATE_API_KEY_FILE,
// KEYGATE_OTHER_INSTANCE. The identity needs wrap, unwrap, rewrap and keys:admin on the instance
// and no role on the other instance.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	kp "github.com/IBM/keyprotect-go-client"
)

type config struct {
	url, instance, otherInstance string
	caFile, certFile, keyFile    string
	apiKey                       string
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyprotect-go:", err)
		os.Exit(2)
	}
	r, err := newRun(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyprotect-go:", err)
		os.Exit(2)
	}
	r.all()
	os.Exit(r.report())
}

func parseFlags(args []string) (config, error) {
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("keyprotect-go", flag.ContinueOnError)
	var c config
	var apiKeyFile string
	fs.StringVar(&c.url, "url", env("KEYGATE_URL", ""), "gateway base URL (https://host:port)")
	fs.StringVar(&c.instance, "instance", env("KEYGATE_INSTANCE", ""), "instance id (bluemix-instance)")
	fs.StringVar(&c.otherInstance, "other-instance", env("KEYGATE_OTHER_INSTANCE", "kpgo-no-roles"),
		"an instance the identity has no role on")
	fs.StringVar(&c.caFile, "ca", env("KEYGATE_CA_FILE", ""), "CA certificate of the gateway (PEM)")
	fs.StringVar(&c.certFile, "cert", env("KEYGATE_CERT_FILE", ""), "client certificate (PEM)")
	fs.StringVar(&c.keyFile, "key", env("KEYGATE_KEY_FILE", ""), "client private key (PEM)")
	fs.StringVar(&apiKeyFile, "api-key-file", env("KEYGATE_API_KEY_FILE", ""), "file holding the API key")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.url = strings.TrimRight(c.url, "/")
	c.apiKey = os.Getenv("KEYGATE_API_KEY")
	if apiKeyFile != "" {
		b, err := os.ReadFile(apiKeyFile)
		if err != nil {
			return c, err
		}
		c.apiKey = strings.TrimSpace(string(b))
	}
	for name, v := range map[string]string{
		"-url": c.url, "-instance": c.instance, "-ca": c.caFile, "-cert": c.certFile,
		"-key": c.keyFile, "-api-key-file (or KEYGATE_API_KEY)": c.apiKey,
	} {
		if v == "" {
			return c, fmt.Errorf("%s is required", name)
		}
	}
	return c, nil
}

// run holds the clients and the results of one pass over every case.
type run struct {
	cfg       config
	transport *http.Transport
	tokens    *CertTokenSource
	api       *kp.Client
	other     *kp.Client
	id        string
	lines     []string
	failed    int
}

func newRun(cfg config) (*run, error) {
	tr, err := mtlsTransport(cfg.caFile, cfg.certFile, cfg.keyFile)
	if err != nil {
		return nil, err
	}
	newClient := func(instance string) (*kp.Client, error) {
		// No APIKey: every call carries its token on the context (kp.NewContextWithAuth).
		return kp.New(kp.ClientConfig{BaseURL: cfg.url, InstanceID: instance, Timeout: 60}, tr)
	}
	api, err := newClient(cfg.instance)
	if err != nil {
		return nil, err
	}
	other, err := newClient(cfg.otherInstance)
	if err != nil {
		return nil, err
	}
	tokens := &CertTokenSource{
		TokenURL: cfg.url + "/identity/token",
		APIKey:   cfg.apiKey,
		Client:   &http.Client{Transport: tr, Timeout: 60 * time.Second},
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &run{cfg: cfg, transport: tr, tokens: tokens, api: api, other: other, id: hex.EncodeToString(b)}, nil
}

// check runs one case and records its line; a case returns what differs from Key Protect.
func (r *run) check(name string, c func() []string) {
	var problems []string
	func() {
		defer func() {
			if p := recover(); p != nil {
				problems = append(problems, fmt.Sprintf("panic: %v", p))
			}
		}()
		problems = c()
	}()
	line := "ok " + name
	if len(problems) > 0 {
		r.failed++
		line = fmt.Sprintf("MISMATCH %s: %s", name, strings.Join(problems, "; "))
	}
	fmt.Println(line)
	r.lines = append(r.lines, line)
}

func (r *run) report() int {
	fmt.Printf("keyprotect-go: %d cases, %d mismatches\n", len(r.lines), r.failed)
	if r.failed == 0 {
		return 0
	}
	for _, l := range r.lines {
		if strings.HasPrefix(l, "MISMATCH") {
			fmt.Fprintln(os.Stderr, l)
		}
	}
	return 1
}
