"""Code the tests share that is not a test: a throwaway PostgreSQL server."""
