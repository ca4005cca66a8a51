// mesh-proxy: the suite's stand-in for Envoy, which no registry reachable here ships. It forwards
// the way an Istio sidecar and ingress gateway do, on the rules Istio's own istio-iptables made:
//
//   mesh-proxy sidecar   (runs as uid 1337, like istio-proxy)
//     :15006  inbound: every TCP connection to the pod lands here (ISTIO_IN_REDIRECT); the original
//             destination comes from SO_ORIGINAL_DST, and the app is re-dialled at that address (the
//             pod IP, over loopback) from 127.0.0.6, as Envoy's inbound passthrough does, so that
//             ISTIO_OUTPUT lets it through (`-s 127.0.0.6/32 -o lo -j RETURN`);
//     :15001  outbound: the pod's own connections land here (ISTIO_REDIRECT); re-dialled at their
//             original destination as uid 1337, which ISTIO_OUTPUT lets out;
//     :15021  /healthz/ready, and /app-health/<container>/<livez|readyz|startupz>: the probes the
//             mesh rewrote, run against the app as ISTIO_KUBE_APP_PROBERS describes them;
//     :15090  /stats/prometheus: connection and probe counters.
//   Connections are proxied whole (one upstream connection per downstream one), as Envoy does for
//   TCP ports; Envoy's HTTP connection pooling is what the gateway below does.
//
//   mesh-proxy gateway   (an ingress gateway pod: no iptables of its own)
//     :8080   HTTP/1.1 reverse proxy to $UPSTREAM (a Service) with a pool of keep-alive upstream
//             connections, idle ones closed after $IDLE_TIMEOUT (Istio's DestinationRule
//             connectionPool.http.idleTimeout).
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const soOriginalDst = 80

var counters = map[string]*atomic.Int64{
	"mesh_inbound_connections_total":  {},
	"mesh_outbound_connections_total": {},
	"mesh_app_probes_total":           {},
	"mesh_gateway_requests_total":     {},
}

func count(name string) { counters[name].Add(1) }

func originalDst(c *net.TCPConn) (*net.TCPAddr, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var addr *net.TCPAddr
	var serr error
	err = raw.Control(func(fd uintptr) {
		// struct sockaddr_in fits in IPv6Mreq's 20 bytes: family(2) port(2) addr(4)
		mreq, e := syscall.GetsockoptIPv6Mreq(int(fd), syscall.IPPROTO_IP, soOriginalDst)
		if e != nil {
			serr = e
			return
		}
		b := mreq.Multiaddr
		addr = &net.TCPAddr{IP: net.IPv4(b[4], b[5], b[6], b[7]), Port: int(binary.BigEndian.Uint16(b[2:4]))}
	})
	if err != nil {
		return nil, err
	}
	return addr, serr
}

// pipe copies both ways, half-closes as each side finishes, and closes both at the end.
func pipe(a, b *net.TCPConn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src *net.TCPConn) {
		io.Copy(dst, src)
		dst.CloseWrite()
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

func serveTCP(addr string, handle func(*net.TCPConn)) {
	ln, err := net.Listen("tcp4", addr) // SO_ORIGINAL_DST is asked at the IPv4 level
	if err != nil {
		log.Fatalf("listen %s: %v", addr, err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("accept %s: %v", addr, err)
		}
		go handle(c.(*net.TCPConn))
	}
}

// forward re-dials a redirected connection's original destination and pipes the two.
func forward(c *net.TCPConn, counter, what string, d net.Dialer) {
	count(counter)
	dst, err := originalDst(c)
	if err != nil {
		log.Printf("%s: no original destination: %v", what, err)
		c.Close()
		return
	}
	d.Timeout = 5 * time.Second
	up, err := d.Dial("tcp", dst.String())
	if err != nil {
		log.Printf("%s: %s: %v", what, dst, err)
		c.SetLinger(0)
		c.Close()
		return
	}
	pipe(c, up.(*net.TCPConn))
}

// inbound: re-dial the app at the original destination from 127.0.0.6.
func inbound(c *net.TCPConn) {
	forward(c, "mesh_inbound_connections_total", "inbound", net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6)}})
}

// outbound: re-dial the original destination (as uid 1337: ISTIO_OUTPUT lets it out).
func outbound(c *net.TCPConn) {
	forward(c, "mesh_outbound_connections_total", "outbound", net.Dialer{})
}

// appProber is one entry of ISTIO_KUBE_APP_PROBERS: the probe as the pod spec had it before the rewrite.
type appProber struct {
	HTTPGet *struct {
		Path   string          `json:"path"`
		Port   json.RawMessage `json:"port"`
		Scheme string          `json:"scheme"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Port json.RawMessage `json:"port"`
	} `json:"tcpSocket"`
	TimeoutSeconds int `json:"timeoutSeconds"`
}

func portOf(raw json.RawMessage) string {
	return strings.Trim(string(raw), `"`)
}

func podIP() string {
	if ip := os.Getenv("INSTANCE_IP"); ip != "" {
		return ip
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}

func health() {
	probers := map[string]appProber{}
	if s := os.Getenv("ISTIO_KUBE_APP_PROBERS"); s != "" {
		if err := json.Unmarshal([]byte(s), &probers); err != nil {
			log.Fatalf("ISTIO_KUBE_APP_PROBERS: %v", err)
		}
	}
	ip := podIP()
	// like the istio-agent's prober: a new connection per probe, from 127.0.0.6
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6)}}).DialContext,
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/app-health/", func(w http.ResponseWriter, r *http.Request) {
		p, ok := probers[r.URL.Path]
		if !ok {
			http.Error(w, "no such app probe", http.StatusNotFound)
			return
		}
		count("mesh_app_probes_total")
		timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
		switch {
		case p.HTTPGet != nil:
			c := *client
			c.Timeout = timeout
			res, err := c.Get(fmt.Sprintf("http://%s:%s%s", ip, portOf(p.HTTPGet.Port), p.HTTPGet.Path))
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			w.WriteHeader(res.StatusCode)
		case p.TCPSocket != nil:
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, portOf(p.TCPSocket.Port)), timeout)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			c.Close()
		default:
			http.Error(w, "unsupported probe", http.StatusInternalServerError)
		}
	})
	log.Fatal(http.ListenAndServe(":15021", mux))
}

func stats(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		for name, c := range counters {
			fmt.Fprintf(w, "# TYPE %s counter\n%s %d\n", name, name, c.Load())
		}
	})
	log.Fatal(http.ListenAndServe(addr, mux))
}

func gateway() {
	upstream := os.Getenv("UPSTREAM")
	if upstream == "" {
		log.Fatal("gateway: UPSTREAM (host:port of the Service behind the gateway) is not set")
	}
	idle, err := time.ParseDuration(envOr("IDLE_TIMEOUT", "1h"))
	if err != nil {
		log.Fatalf("IDLE_TIMEOUT: %v", err)
	}
	target := &url.URL{Scheme: "http", Host: upstream}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: idle, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		count("mesh_gateway_requests_total")
		proxy.ServeHTTP(w, r)
	})
	go stats(":15090")
	log.Printf("gateway: :8080 -> %s (idle upstream connections closed after %s)", upstream, idle)
	log.Fatal(http.ListenAndServe(":8080", mux))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) < 2 {
		log.Fatal("usage: mesh-proxy sidecar|gateway")
	}
	switch os.Args[1] {
	case "sidecar":
		go serveTCP("0.0.0.0:15006", inbound)
		go serveTCP("0.0.0.0:15001", outbound)
		go stats(":15090")
		log.Printf("sidecar: inbound :15006, outbound :15001, health :15021, stats :15090 (uid %d)", os.Getuid())
		health()
	case "gateway":
		gateway()
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}
