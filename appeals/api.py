from ninja import NinjaAPI

api = NinjaAPI(title="Appeals Copilot intake API", version="1", urls_namespace="api")
