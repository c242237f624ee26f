// IoT Hub (S1). Devices send only aggregates and events (the controller's capability events and site
// summaries, the modules' fault and recovery events: at most about 2000 messages per site and day); routes file them by messageType into storage, written with the hub's
// managed identity; everything else goes to the built-in endpoint (fallback route).
param name string
param location string
param units int
param storageAccountName string
param workspaceId string
param tags object

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'S1'
    capacity: units
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    minTlsVersion: '1.2'
    disableLocalAuth: false
    eventHubEndpoints: {
      events: {
        retentionTimeInDays: 1
        partitionCount: 4
      }
    }
    routing: {
      endpoints: {
        storageContainers: [
          {
            name: 'capability'
            authenticationType: 'identityBased'
            endpointUri: storage.properties.primaryEndpoints.blob
            containerName: 'capability'
            encoding: 'JSON'
            fileNameFormat: '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}'
            batchFrequencyInSeconds: 300
            maxChunkSizeInBytes: 104857600
          }
          {
            name: 'summaries'
            authenticationType: 'identityBased'
            endpointUri: storage.properties.primaryEndpoints.blob
            containerName: 'summaries'
            encoding: 'JSON'
            fileNameFormat: '{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}'
            batchFrequencyInSeconds: 300
            maxChunkSizeInBytes: 104857600
          }
        ]
      }
      routes: [
        {
          name: 'capability-to-storage'
          source: 'DeviceMessages'
          condition: 'messageType = \'capabilityStatus\''
          endpointNames: [
            'capability'
          ]
          isEnabled: true
        }
        {
          name: 'summaries-to-storage'
          source: 'DeviceMessages'
          condition: 'messageType = \'siteSummary\''
          endpointNames: [
            'summaries'
          ]
          isEnabled: true
        }
      ]
      fallbackRoute: {
        name: '$fallback'
        source: 'DeviceMessages'
        condition: 'true'
        endpointNames: [
          'events'
        ]
        isEnabled: true
      }
    }
  }
}

// The hub writes routed messages with its own identity: no storage keys in the routing configuration.
resource writer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, hub.id, storageBlobDataContributor)
  scope: storage
  properties: {
    principalId: hub.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: hub
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

output name string = hub.name
output id string = hub.id
output hostName string = hub.properties.hostName
