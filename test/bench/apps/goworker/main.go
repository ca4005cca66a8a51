// The bench's Go debuggee (built with CGO_ENABLED=0: a static binary with Go's own resolver):
// worker.js's protocol (JSON lines on stdio, {"ready":true} first) for the ops rtt, download and dns,
// with net/http and net (no Tether code), so that under the native layer it measures what a Go
// program sees.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"time"
)

var block = func() []byte {
	seed := []byte("tether-bench")
	var out []byte
	for i := 0; i < 2048; i++ {
		s := sha256.Sum256(seed)
		seed = s[:]
		out = append(out, seed...)
	}
	return out
}()

func expectedSha(n int) string {
	h := sha256.New()
	for n > 0 {
		c := block
		if n < len(block) {
			c = block[:n]
		}
		h.Write(c)
		n -= len(c)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type msg struct {
	ID             int    `json:"id"`
	Op             string `json:"op"`
	URL            string `json:"url"`
	N              int    `json:"n"`
	Warmup         *int   `json:"warmup"`
	ExpectServedBy string `json:"expectServedBy"`
	Bytes          int    `json:"bytes"`
	Runs           int    `json:"runs"`
	Name           string `json:"name"`
}

func ms(since time.Time) float64 { return float64(time.Since(since).Microseconds()) / 1000 }

func rtt(m msg) any {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	warmup := 20
	if m.Warmup != nil {
		warmup = *m.Warmup
	}
	var expect *regexp.Regexp
	if m.ExpectServedBy != "" {
		expect = regexp.MustCompile(m.ExpectServedBy)
	}
	out := []float64{}
	errors, wrong, sample := 0, 0, ""
	for i := 0; i < warmup+m.N; i++ {
		t0 := time.Now()
		r, err := client.Get(m.URL)
		if err != nil {
			errors++
			continue
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		took := ms(t0)
		if r.StatusCode != 200 || (expect != nil && !expect.MatchString(r.Header.Get("x-served-by"))) {
			wrong++
			if sample == "" {
				sample = fmt.Sprintf("%d %s %.100s", r.StatusCode, r.Header.Get("x-served-by"), body)
			}
		}
		if i >= warmup {
			out = append(out, took)
		}
	}
	return map[string]any{"ms": out, "errors": errors, "wrong": wrong, "sample": sample}
}

func download(m msg) any {
	results := []any{}
	runs := m.Runs
	if runs == 0 {
		runs = 1
	}
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		r, err := http.Get(fmt.Sprintf("%s?n=%d", m.URL, m.Bytes))
		if err != nil {
			results = append(results, map[string]any{"ok": false, "error": err.Error()})
			continue
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		r.Body.Close()
		results = append(results, map[string]any{"ms": ms(t0), "bytes": n, "ok": r.StatusCode == 200 && int(n) == m.Bytes && hex.EncodeToString(h.Sum(nil)) == expectedSha(m.Bytes), "servedBy": r.Header.Get("x-served-by")})
	}
	return map[string]any{"results": results}
}

func dns(m msg) any {
	warmup := 5
	if m.Warmup != nil {
		warmup = *m.Warmup
	}
	out := []float64{}
	errors, address := 0, ""
	for i := 0; i < warmup+m.N; i++ {
		t0 := time.Now()
		a, err := net.DefaultResolver.LookupIP(context.Background(), "ip4", m.Name)
		if err != nil {
			errors++
			continue
		}
		address = a[0].String()
		if i >= warmup {
			out = append(out, ms(t0))
		}
	}
	return map[string]any{"ms": out, "errors": errors, "address": address}
}

func main() {
	out := json.NewEncoder(os.Stdout)
	out.Encode(map[string]bool{"ready": true})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var m msg
		if json.Unmarshal(in.Bytes(), &m) != nil {
			continue
		}
		var result any
		switch m.Op {
		case "rtt":
			result = rtt(m)
		case "download":
			result = download(m)
		case "dns":
			result = dns(m)
		case "ping":
			result = map[string]int{"pid": os.Getpid()}
		default:
			out.Encode(map[string]any{"id": m.ID, "error": "unknown op " + m.Op})
			continue
		}
		out.Encode(map[string]any{"id": m.ID, "result": result})
	}
}
