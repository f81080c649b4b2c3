# One image for every role in docker-compose.yml (migrate, web, worker, beat, flower); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NOTIFIER_VAR_DIR=/var/lib/notifier
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home-dir /app notifier \
    && mkdir -p /var/lib/notifier \
    && chown notifier /var/lib/notifier
USER notifier
EXPOSE 8000 5555
CMD ["bin/web"]
