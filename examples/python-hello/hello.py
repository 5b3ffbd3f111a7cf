"""A hello collector: one cloud service type and one cloud service."""

from cloudforet_collector import CollectorPluginServer, make_cloud_service, make_cloud_service_type, make_response

app = CollectorPluginServer(name="hello-py", version="0.1.0")


@app.route("Collector.collect")
def collector_collect(params: dict):
    greeting = params["options"].get("greeting", "Hello, CloudForet")
    yield make_response(
        resource_type="inventory.CloudServiceType",
        cloud_service_type=make_cloud_service_type(
            name="Greeting",
            group="Hello",
            provider="hello",
            metadata={"search": {"fields": [{"Text": "data.text"}]}, "table": {"fields": [{"Text": "data.text"}]}},
        ),
    )
    yield make_response(
        cloud_service=make_cloud_service(
            name="greeting",
            cloud_service_type="Greeting",
            cloud_service_group="Hello",
            provider="hello",
            data={"text": greeting},
            reference={"resource_id": "hello-1"},
        ),
    )
