"""The broker seam: connections and clients, remote control and inspect, publishing, results, queues, events."""
