"""One store per domain; each method runs one transaction via `Database.run_interaction`."""
