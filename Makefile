# The two commands that matter:   make demo   |   make test
.PHONY: setup demo stop test run-dag bench lint samples clean

setup:            ## create .venv and .venv-hypha from the pinned requirements
	bash scripts/setup.sh

demo:             ## set up and run the demo (UI on http://127.0.0.1:8080); stop with make stop
	bash scripts/demo.sh

stop:             ## stop every process the demo started
	bash scripts/stop.sh

test:             ## set up and run lint + the whole test suite (PostgreSQL, S3 and Hypha servers)
	bash scripts/test.sh $(ARGS)

run-dag:          ## make run-dag DAG=<dag_id> CONF='<json>' [APPROVE=all]
	@bash -c '. scripts/env.sh && python scripts/run_dag.py "$(DAG)" --conf '"'"'$(or $(CONF),{})'"'"' $(if $(APPROVE),--approve $(APPROVE),)'

bench:            ## run every benchmark; one JSON line each
	bash -c '. scripts/env.sh && python bench/run.py $(BENCH)'

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

samples:
	bash -c '. scripts/env.sh && python scripts/make_samples.py "$$IMAGING_DATA_DIR/samples"'

clean: stop
	rm -rf .airflow .data .run
