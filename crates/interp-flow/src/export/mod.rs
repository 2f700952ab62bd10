//! Flow graph exports: DOT, SVG, a self-contained HTML viewer and circuit-tracer's graph JSON.
