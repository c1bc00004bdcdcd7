"""Cases, queues, claiming, model recommendations, human decisions and the audit log."""
