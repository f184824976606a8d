package progress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics exposes the same figures as the other renderers on /metrics.
type Metrics struct {
	reg        *prometheus.Registry
	docs       *prometheus.GaugeVec
	bytes      *prometheus.GaugeVec
	estimated  *prometheus.GaugeVec
	partsDone  prometheus.Gauge
	partsTotal prometheus.Gauge
	events     prometheus.Gauge
	lag        prometheus.Gauge
	phase      *prometheus.GaugeVec
	srv        *http.Server
	lis        net.Listener
}

// NewMetrics registers the dsync collectors on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		docs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dsync_copy_docs",
			Help: "Documents copied, per sink namespace (cumulative over runs of the flow)."}, []string{"namespace"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dsync_copy_bytes",
			Help: "Bytes copied, per sink namespace."}, []string{"namespace"}),
		estimated: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dsync_copy_estimated_docs",
			Help: "Estimated documents to copy, per sink namespace."}, []string{"namespace"}),
		partsDone:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "dsync_partitions_done", Help: "Copy partitions finished."}),
		partsTotal: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dsync_partitions_total", Help: "Copy partitions in the plan."}),
		events:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "dsync_cdc_events_applied", Help: "Change events applied to the sink."}),
		lag:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "dsync_cdc_lag_seconds", Help: "How far the sink is behind the source."}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dsync_phase",
			Help: "1 for the current phase of the flow."}, []string{"phase"}),
	}
	m.reg.MustRegister(m.docs, m.bytes, m.estimated, m.partsDone, m.partsTotal, m.events, m.lag, m.phase,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Serve listens on addr and serves /metrics until Close.
func (m *Metrics) Serve(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	m.lis = lis
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := m.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener is gone; nothing useful to do mid-run
		}
	}()
	return nil
}

// Addr returns the listening address (useful with port 0).
func (m *Metrics) Addr() string {
	if m.lis == nil {
		return ""
	}
	return m.lis.Addr().String()
}

// Update implements Renderer.
func (m *Metrics) Update(s Snapshot) {
	for _, ns := range s.Namespaces {
		m.docs.WithLabelValues(ns.Name).Set(float64(ns.Docs))
		m.bytes.WithLabelValues(ns.Name).Set(float64(ns.Bytes))
		m.estimated.WithLabelValues(ns.Name).Set(float64(ns.EstimatedDocs))
	}
	m.partsDone.Set(float64(s.PartitionsDone))
	m.partsTotal.Set(float64(s.PartitionsTotal))
	m.events.Set(float64(s.Events))
	m.lag.Set(s.Lag.Seconds())
	for _, p := range []string{"plan", "copy", "cdc", "done"} {
		v := 0.0
		if p == s.Phase {
			v = 1
		}
		m.phase.WithLabelValues(p).Set(v)
	}
}

// Close implements Renderer; it stops the HTTP server.
func (m *Metrics) Close(s Snapshot) {
	m.Update(s)
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.srv.Shutdown(ctx)
	}
}

// Multi fans out to several renderers.
type Multi []Renderer

// Update implements Renderer.
func (m Multi) Update(s Snapshot) {
	for _, r := range m {
		r.Update(s)
	}
}

// Close implements Renderer.
func (m Multi) Close(s Snapshot) {
	for _, r := range m {
		r.Close(s)
	}
}
