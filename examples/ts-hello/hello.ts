// A hello collector: one cloud service type and one cloud service.

import { CollectorPluginServer, makeCloudService, makeCloudServiceType, makeResponse } from '@cloudforet/collector-sdk';

const app = new CollectorPluginServer({ name: 'hello-ts', version: '0.1.0' });

app.route('Collector.collect', function* ({ options }) {
  const greeting: string = options.greeting ?? 'Hello, CloudForet';
  yield makeResponse({
    cloud_service_type: makeCloudServiceType({
      name: 'Greeting',
      group: 'Hello',
      provider: 'hello',
      metadata: { search: { fields: [{ Text: 'data.text' }] }, table: { fields: [{ Text: 'data.text' }] } },
    }),
  });
  yield makeResponse({
    cloud_service: makeCloudService({
      name: 'greeting',
      cloud_service_type: 'Greeting',
      cloud_service_group: 'Hello',
      provider: 'hello',
      data: { text: greeting },
      reference: { resource_id: 'hello-1' },
    }),
  });
});
