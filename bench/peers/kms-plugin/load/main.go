// Command load is K1's load generator in Go: closed-loop v2 Encrypt+Decrypt round trips on one
// gRPC connection to a KMS plugin's UNIX socket (as kube-apiserver holds one), `-c` loops for
// `-duration`. It prints one JSON object: calls, errors, seconds, the latency of every successful
// round trip (ms) and its own CPU time, so the bench can tell whether the client is the limit.
// Used instead of the Node KmsClient when that one saturates its core (docs/benchmarks.md, K1).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"log"
	"os"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	kmsapi "k8s.io/kms/apis/v2"
)

type result struct {
	Ops        int       `json:"ops"`
	Errors     int       `json:"errors"`
	Seconds    float64   `json:"seconds"`
	Latencies  []float64 `json:"latencies"`
	CPUSeconds float64   `json:"cpuSeconds"`
	FirstError string    `json:"firstError,omitempty"`
}

func main() {
	socket := flag.String("socket", "", "the plugin's UNIX socket")
	conc := flag.Int("c", 16, "concurrent loops")
	dur := flag.Duration("duration", 5*time.Second, "how long")
	size := flag.Int("plain-bytes", 32, "plaintext size")
	timeout := flag.Duration("timeout", 3*time.Second, "deadline per call")
	flag.Parse()
	conn, err := grpc.NewClient("unix://"+*socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	defer conn.Close()
	client := kmsapi.NewKeyManagementServiceClient(conn)
	plain := make([]byte, *size)
	_, _ = rand.Read(plain)
	roundTrip := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		e, err := client.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: plain, Uid: "k1"})
		if err != nil {
			return err
		}
		_, err = client.Decrypt(ctx, &kmsapi.DecryptRequest{Ciphertext: e.Ciphertext, KeyId: e.KeyId, Uid: "k1", Annotations: e.Annotations})
		return err
	}
	// One call first so that the connection is up before the clock starts (as the Node client's warm-up).
	if err := roundTrip(); err != nil {
		log.Fatalf("first call: %v", err)
	}
	var mu sync.Mutex
	res := result{Latencies: make([]float64, 0, 65536)}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, 4096)
			errs := 0
			first := ""
			for time.Now().Before(deadline) {
				s := time.Now()
				if err := roundTrip(); err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				local = append(local, float64(time.Since(s).Microseconds())/1000)
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, local...)
			res.Errors += errs
			if res.FirstError == "" {
				res.FirstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Sec+r.Stime.Sec) + float64(r.Utime.Usec+r.Stime.Usec)/1e6
	}
	res.CPUSeconds = cpu(ru1) - cpu(ru0)
	res.Ops = len(res.Latencies)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		log.Fatal(err)
	}
}
