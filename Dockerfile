FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services services
COPY shared shared
COPY projections projections
COPY nats nats
COPY migrations migrations
COPY templates templates
RUN pip install --no-cache-dir -e .
USER nobody
CMD ["jetpost", "--help"]
