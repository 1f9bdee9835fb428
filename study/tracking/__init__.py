"""MLflow for a study: the client that records parent and trial runs (:mod:`.client`), the
tracking server the launcher starts (:mod:`.server`) and its supervision, the spool that keeps
writes the server could not take, and what the parent and chosen runs log."""
