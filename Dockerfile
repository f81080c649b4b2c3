# One image for every role in docker-compose.yml (migrate, web, worker, beat, flower); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NOTIFIER_VAR_DIR=/var/lib/notifier DJANGO_STATIC_ROOT=/app/static
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# The admin's CSS and JavaScript, collected (and gzipped) into the image; WhiteNoise serves them from bin/web.
RUN python manage.py collectstatic --noinput --verbosity 0
RUN useradd --system --home-dir /app notifier \
    && mkdir -p /var/lib/notifier \
    && chown notifier /var/lib/notifier
USER notifier
EXPOSE 8000 5555
CMD ["bin/web"]
