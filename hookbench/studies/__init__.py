"""Studies built on jobs: reproduce a logged run, confirm a sweep's best patches on held-out items."""
