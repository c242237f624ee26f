// Device Provisioning Service linked to the hub. Devices enroll through a symmetric-key enrollment group
// (created with `az iot dps enrollment-group create`, see README.md): zero-touch provisioning.
param name string
param location string
param iotHubName string
param workspaceId string
param tags object

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' existing = {
  name: iotHubName
}

resource dps 'Microsoft.Devices/provisioningServices@2022-12-12' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'S1'
    capacity: 1
  }
  properties: {
    allocationPolicy: 'Hashed'
    iotHubs: [
      {
        location: location
        connectionString: 'HostName=${hub.properties.hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=${hub.listkeys().value[0].primaryKey}'
      }
    ]
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: dps
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output idScope string = dps.properties.idScope
output globalEndpoint string = 'global.azure-devices-provisioning.net'
