// energy-edge on Azure: one environment (dev, prod) from an empty subscription.
// Deploy: az deployment sub create --location <region> --template-file infra/main.bicep --parameters infra/<env>.bicepparam
targetScope = 'subscription'

@description('Environment name: part of every resource name and the devices\' tags.environment.')
@allowed([
  'dev'
  'prod'
])
param environment string

@description('Azure region of every resource.')
param location string

@description('Resource group that holds the environment.')
param resourceGroupName string = 'rg-energy-edge-${environment}'

@description('IoT Hub name (globally unique).')
param iotHubName string = 'iot-energy-edge-${environment}'

@description('Device Provisioning Service name.')
param dpsName string = 'provs-energy-edge-${environment}'

@description('Container registry name (globally unique, alphanumeric).')
param registryName string = 'crenergyedge${environment}'

@description('Storage account for routed messages (globally unique, lowercase alphanumeric).')
param storageAccountName string = 'stenergyedge${environment}'

@description('Log Analytics workspace name.')
param workspaceName string = 'log-energy-edge-${environment}'

@description('Log retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('IoT Hub S1 units (400 000 messages/day each).')
@minValue(1)
@maxValue(200)
param iotHubUnits int = 1

@description('Address that gets the alerts.')
param alertEmail string

@description('Sites expected online: below this many connected devices for 15 minutes is an alert.')
@minValue(0)
param expectedConnectedDevices int

@description('Fewer upstream messages than this in an hour is an alert (each site sends about 80 per hour).')
@minValue(0)
param minMessagesPerHour int

param tags object = {}

var allTags = union(tags, {
  application: 'energy-edge'
  environment: environment
})

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  scope: group
  name: 'monitoring'
  params: {
    workspaceName: workspaceName
    location: location
    retentionDays: logRetentionDays
    alertEmail: alertEmail
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  scope: group
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    workspaceId: monitoring.outputs.workspaceId
    tags: allTags
  }
}

module registry 'modules/registry.bicep' = {
  scope: group
  name: 'registry'
  params: {
    name: registryName
    location: location
    workspaceId: monitoring.outputs.workspaceId
    tags: allTags
  }
}

module iotHub 'modules/iothub.bicep' = {
  scope: group
  name: 'iothub'
  params: {
    name: iotHubName
    location: location
    units: iotHubUnits
    storageAccountName: storage.outputs.name
    workspaceId: monitoring.outputs.workspaceId
    tags: allTags
  }
}

module dps 'modules/dps.bicep' = {
  scope: group
  name: 'dps'
  params: {
    name: dpsName
    location: location
    iotHubName: iotHub.outputs.name
    workspaceId: monitoring.outputs.workspaceId
    tags: allTags
  }
}

module alerts 'modules/alerts.bicep' = {
  scope: group
  name: 'alerts'
  params: {
    iotHubId: iotHub.outputs.id
    actionGroupId: monitoring.outputs.actionGroupId
    expectedConnectedDevices: expectedConnectedDevices
    minMessagesPerHour: minMessagesPerHour
    tags: allTags
  }
}

output resourceGroupName string = group.name
output iotHubHostName string = iotHub.outputs.hostName
output dpsIdScope string = dps.outputs.idScope
output dpsGlobalEndpoint string = dps.outputs.globalEndpoint
output registryLoginServer string = registry.outputs.loginServer
output workspaceId string = monitoring.outputs.workspaceId
