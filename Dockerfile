# One image for every role of the stack (API, planner, channel workers, beat, tools).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broadcaster ./broadcaster
COPY subscribers ./subscribers
COPY channels ./channels
COPY templates ./templates
COPY tasks ./tasks
RUN pip install --no-cache-dir . && useradd --system --uid 10001 broadcaster
USER broadcaster
ENTRYPOINT ["broadcaster"]
CMD ["--help"]
